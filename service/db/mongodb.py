"""What the service relies on from MongoDB itself, on every store: the document size limit and
the text score."""

from typing import Any

import bson

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def document_size(document: dict[str, Any]) -> int:
    return len(bson.encode(document))


TEXT_SCORE = {"$meta": "textScore"}
