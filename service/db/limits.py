"""MongoDB's limits that the service must respect on every store."""

from typing import Any

import bson

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def document_size(document: dict[str, Any]) -> int:
    return len(bson.encode(document))
