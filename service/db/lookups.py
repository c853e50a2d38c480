"""Equality lookups for the embedded store's single-field unique indexes.

mongomock answers every filter by scanning every document, twice per upsert (the match, then its
own uniqueness check); migrating ten thousand videos keyed on `legacy.id` would scan a hundred
million. These maps answer an equality on such a field with the few documents that can match.
"""

from typing import Any

import bson

ABSENT = object()
LOOKUP_TYPES = (int, float, str, bson.ObjectId)


def scalar_at(document: dict[str, Any], path: list[str]) -> tuple[bool, Any]:
    """(True, value) for a plain scalar at the dotted path, (True, ABSENT) when the path is not
    there, (False, None) when an array or another type is in the way: then only the full filter
    can tell whether the document matches."""
    value: Any = document
    for part in path:
        if isinstance(value, list):
            return False, None
        if not isinstance(value, dict):
            return True, ABSENT
        if part not in value:
            return True, ABSENT
        value = value[part]
    if value is None:
        return True, ABSENT
    if isinstance(value, LOOKUP_TYPES):
        return True, value
    return False, None


class EqualityLookup:
    """The keys of the documents holding each value at one dotted path.

    It may offer too many candidates (each is checked against the whole filter), never too few:
    a document whose value is not a plain scalar is always offered."""

    def __init__(self, field: str, documents: dict[Any, dict[str, Any]]) -> None:
        self.path = field.split(".")
        self.keys: dict[Any, set[Any]] = {}
        self.value_of: dict[Any, Any] = {}
        self.unsure: set[Any] = set()
        for key, document in documents.items():
            self.add(key, document)

    def add(self, key: Any, document: dict[str, Any]) -> None:
        plain, value = scalar_at(document, self.path)
        if not plain:
            self.unsure.add(key)
        elif value is not ABSENT:
            self.keys.setdefault(value, set()).add(key)
            self.value_of[key] = value

    def remove(self, key: Any) -> None:
        self.unsure.discard(key)
        if key in self.value_of:
            value = self.value_of.pop(key)
            bucket = self.keys[value]
            bucket.discard(key)
            if not bucket:
                del self.keys[value]

    def candidates(self, value: Any) -> set[Any]:
        return self.keys.get(value, set()) | self.unsure


def is_lookup_value(value: Any) -> bool:
    """Whether an equality filter value can go through a lookup (NaN never equals itself)."""
    return isinstance(value, LOOKUP_TYPES) and value == value
