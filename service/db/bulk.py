"""`bulk_write` for the embedded store: mongomock's own passes pymongo 4.9+'s write models a
`sort` argument it does not know, so the models are taken apart into single operations here."""

from collections.abc import Iterable
from typing import Any

from pymongo.errors import BulkWriteError, DocumentTooLarge, WriteError
from pymongo.results import BulkWriteResult

DOCUMENT_TOO_LARGE_CODE = 10334
"""MongoDB's BSONObjectTooLarge, reported for an insert in a bulk write that passes the limit."""


class BulkCalls:
    """pymongo's write models (InsertOne, UpdateOne, ...) taken apart, through the `_add_to_bulk`
    protocol they all implement, into the single-operation calls mongomock runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    @classmethod
    def of(cls, requests: Iterable[Any]) -> list[tuple[str, tuple, dict]]:
        bulk = cls()
        for request in requests:
            request._add_to_bulk(bulk)
        return bulk.calls

    @staticmethod
    def _refuse(options: dict[str, Any]) -> None:
        used = sorted(name for name, value in options.items() if value is not None)
        if used:
            raise NotImplementedError(f"the embedded store's bulk_write does not support {', '.join(used)}")

    def add_insert(self, document: dict[str, Any]) -> None:
        self.calls.append(("insert_one", (document,), {}))

    def add_update(self, selector: dict, update: Any, multi: bool, upsert: bool, **options: Any) -> None:
        self._refuse(options)
        self.calls.append(("update_many" if multi else "update_one", (selector, update), {"upsert": upsert}))

    def add_replace(self, selector: dict, replacement: dict, upsert: bool, **options: Any) -> None:
        self._refuse(options)
        self.calls.append(("replace_one", (selector, replacement), {"upsert": upsert}))

    def add_delete(self, selector: dict, limit: int, **options: Any) -> None:
        self._refuse(options)
        self.calls.append(("delete_one" if limit == 1 else "delete_many", (selector,), {}))


class BulkOutcome:
    """The counts and errors of one bulk write, in the shape MongoDB reports them."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {
            "writeErrors": [],
            "writeConcernErrors": [],
            "nInserted": 0,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }

    def succeeded(self, index: int, method: str, result: Any) -> None:
        if method == "insert_one":
            self.raw["nInserted"] += 1
        elif method.startswith("delete"):
            self.raw["nRemoved"] += result.deleted_count
        elif result.upserted_id is not None:
            self.raw["nUpserted"] += 1
            self.raw["upserted"].append({"index": index, "_id": result.upserted_id})
        else:
            self.raw["nMatched"] += result.matched_count
            self.raw["nModified"] += result.modified_count or 0

    def failed(self, index: int, error: WriteError | DocumentTooLarge, operation: Any) -> None:
        code = error.code if isinstance(error, WriteError) else DOCUMENT_TOO_LARGE_CODE
        self.raw["writeErrors"].append({"index": index, "code": code, "errmsg": str(error), "op": operation})

    def result(self) -> BulkWriteResult:
        if self.raw["writeErrors"]:
            raise BulkWriteError(self.raw)
        return BulkWriteResult(self.raw, acknowledged=True)
