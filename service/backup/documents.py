"""What a document must be to be imported, and checked: in one of the service's collections, valid
against that collection's Beanie model, and writable as it is.

Beanie validates only once initialised: `initialise_models` does that without touching the disk.
"""

from typing import Any

import bson
from beanie import Document
from bson import ObjectId
from bson.errors import InvalidDocument
from pydantic import ValidationError

from service.db.models import DOCUMENT_MODELS
from service.db.mongodb import MAX_DOCUMENT_BYTES
from service.db.service import connect_scratch


async def initialise_models() -> None:
    """Let the Beanie models validate, through a throwaway in-memory store that writes nowhere."""
    scratch = await connect_scratch()
    scratch.close()


def collection_models() -> dict[str, type[Document]]:
    """Each collection the service has, by name, with its model."""
    return {model.Settings.name: model for model in DOCUMENT_MODELS}


def model_problem(model: type[Document], document: dict[str, Any]) -> str | None:
    """Why the document does not validate against its model, or None."""
    try:
        model.model_validate(document)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"does not match the {model.__name__} model: {where}: {first['msg']}{more}"
    return None


def import_problem(model: type[Document], document: dict[str, Any]) -> str | None:
    """Why the document cannot be imported as it is, or None: its `_id`, its field names, its
    size as BSON, or its model."""
    return (
        _id_problem(document["_id"])
        or _name_problem(document)
        or _size_problem(document)
        or model_problem(model, document)
    )


def _id_problem(value: object) -> str | None:
    """An upsert matches on `_id`: an array, a regex or an operator document there would match
    other documents, or none."""
    if isinstance(value, ObjectId | str | int) and not isinstance(value, bool):
        return None
    return f"_id is {type(value).__name__}, not an ObjectId, a string or an integer"


def _name_problem(document: dict[str, Any]) -> str | None:
    """A field name starting with `$` is an operator to MongoDB, and BSON ends a name at NUL.
    Walked without recursion: nesting is as deep as the JSON parser allowed."""
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            for name, item in value.items():
                where = f"{path}.{name}" if path else name
                if name.startswith("$") or "\x00" in name:
                    return f"field {where!r}: a name starting with '$' or holding NUL"
                pending.append((where, item))
        elif isinstance(value, list):
            pending.extend((f"{path}.{index}", item) for index, item in enumerate(value))
    return None


def _size_problem(document: dict[str, Any]) -> str | None:
    try:
        size = len(bson.encode(document))
    except (InvalidDocument, OverflowError) as error:
        return f"cannot be written as BSON ({error})"
    if size > MAX_DOCUMENT_BYTES:
        return f"{size} bytes of BSON, past MongoDB's 16 MB limit"
    return None
