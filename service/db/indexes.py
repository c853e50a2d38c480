"""Indexes as MongoDB compares them: the declared ones against those a store has, and the refusals.

MongoDB (src/mongo/db/catalog/index_catalog_impl.cpp, `_doesSpecConflictWithExisting`, and
src/mongo/db/index/index_descriptor.cpp, `compareIndexOptions`) decides a new index against the
existing ones by its name, its key pattern and the options that identify an index (unique,
sparse, collation, partialFilterExpression); other options (weights, expireAfterSeconds, ...)
only make two indexes identical or not:

- same name, other key or identifying option: 86 IndexKeySpecsConflict;
- same name and key, other options: 85 IndexOptionsConflict; all the same: nothing to do;
- other name, same key and identifying options: 85 IndexOptionsConflict;
- a text index when the collection has one with another key pattern: 67 CannotCreateIndex.

A text index's key pattern is `{_fts: "text", _ftsx: 1}` between its other fields, whatever its
text fields: they become weights (src/mongo/db/fts/fts_spec.cpp, `fixSpec`), so a second text
index under another name is refused with 85.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from beanie import Document
from beanie.odm.utils.typing import get_index_attributes
from pymongo import IndexModel
from pymongo.errors import OperationFailure

logger = logging.getLogger(__name__)

INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
CANNOT_CREATE_INDEX = 67
TEXT_INDEX_VERSION = 3
ID_INDEX = "_id_"

_IDENTIFYING = ("unique", "sparse", "collation", "partialFilterExpression")
_NOT_OPTIONS = ("key", "name", "v", "ns", "background")
_TEXT_KEY = (("_fts", "text"), ("_ftsx", 1))


@dataclass(frozen=True)
class IndexSpec:
    """An index in MongoDB's canonical form: text fields folded into weights, defaults filled."""

    name: str
    key: tuple[tuple[str, Any], ...]
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, keys: Iterable[tuple[str, Any]], options: dict[str, Any]) -> "IndexSpec":
        keys = [(path, kind) for path, kind in keys]
        options = {k: v for k, v in options.items() if k not in _NOT_OPTIONS and v is not None and v is not False}
        if not any(kind == "text" for _, kind in keys):
            return cls(name, tuple(keys), options)
        return cls(name, _text_key(keys), _text_options(keys, options))

    @classmethod
    def of_model(cls, model: IndexModel) -> "IndexSpec":
        document = dict(model.document)
        return cls.of(document["name"], document.pop("key").items(), document)

    @classmethod
    def of_information(cls, name: str, information: dict[str, Any]) -> "IndexSpec":
        """From one entry of `index_information()`."""
        return cls.of(name, information["key"], information)

    @property
    def identity(self) -> tuple:
        return (self.key, *(repr(self.options.get(option)) for option in _IDENTIFYING))

    @property
    def is_text(self) -> bool:
        return any(kind == "text" for _, kind in self.key)

    def information(self) -> dict[str, Any]:
        """As `index_information()` shows it on MongoDB."""
        return {"v": 2, "key": list(self.key), **self.options}

    def describe(self) -> str:
        options = "".join(f", {name}={value!r}" for name, value in sorted(self.options.items()))
        return "{" + ", ".join(f"{path}: {kind!r}" for path, kind in self.key) + "}" + options


def _text_key(keys: list[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    kinds = [kind == "text" or path == "_ftsx" for path, kind in keys]  # `_ftsx`: already in this form
    first, last = kinds.index(True), len(kinds) - 1 - kinds[::-1].index(True)
    return (*keys[:first], *_TEXT_KEY, *keys[last + 1 :])


def _text_options(keys: list[tuple[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    weights = {path: 1 for path, kind in keys if kind == "text" and path not in ("_fts", "_ftsx")}
    weights.update(options.get("weights") or {})
    return {
        **options,
        "weights": dict(sorted(weights.items())),
        "default_language": options.get("default_language", "english"),
        "language_override": options.get("language_override", "language"),
        "textIndexVersion": options.get("textIndexVersion", TEXT_INDEX_VERSION),
    }


def _refusal(code: int, message: str) -> OperationFailure:
    return OperationFailure(message, code=code, details={"ok": 0, "errmsg": message, "code": code})


def check_new_index(existing: Iterable[IndexSpec], candidate: IndexSpec) -> bool:
    """Whether `candidate` must be built (False: an identical one exists); OperationFailure with
    MongoDB's code when MongoDB would refuse it."""
    existing = list(existing)
    for index in existing:
        if index.name != candidate.name:
            continue
        if index.identity != candidate.identity:
            raise _refusal(
                INDEX_KEY_SPECS_CONFLICT,
                "An existing index has the same name as the requested index. "
                f"Requested index: {candidate.describe()}, existing index: {index.describe()}",
            )
        if index.options != candidate.options:
            raise _refusal(
                INDEX_OPTIONS_CONFLICT,
                "An equivalent index already exists with the same name but different options. "
                f"Requested index: {candidate.describe()}, existing index: {index.describe()}",
            )
        return False
    for index in existing:
        if index.identity == candidate.identity:
            raise _refusal(INDEX_OPTIONS_CONFLICT, f"Index already exists with a different name: {index.name}")
    if candidate.is_text and (text := next((index for index in existing if index.is_text), None)):
        raise _refusal(
            CANNOT_CREATE_INDEX,
            f'only one text index per collection allowed, found existing text index "{text.name}"',
        )
    return True


APPLY_COMMAND = "video-analyzer indexes --apply"


@dataclass(frozen=True)
class IndexState:
    """One index of a collection, as declared by a model and as the store has it."""

    collection: str
    name: str
    declared: IndexModel | None
    existing: IndexSpec | None

    @property
    def state(self) -> str:
        if self.declared is None:
            return "not declared"
        if self.existing is None:
            return "missing"
        return "same" if IndexSpec.of_model(self.declared) == self.existing else "changed"

    @property
    def ok(self) -> bool:
        return self.state in ("same", "not declared")

    def render(self) -> str:
        line = f"{self.collection}.{self.name}: {self.state}"
        if self.declared is not None and self.state != "same":
            line += f"\n  declared {IndexSpec.of_model(self.declared).describe()}"
        if self.existing is not None and self.state != "same":
            line += f"\n  existing {self.existing.name} {self.existing.describe()}"
        return line


def declared_indexes(models: Iterable[type[Document]]) -> dict[str, list[IndexModel]]:
    """Each collection's declared indexes: its fields marked `Indexed` (as Beanie builds them) and
    those its `Settings` list."""
    return {model.Settings.name: [*_indexed_fields(model), *getattr(model.Settings, "indexes", [])] for model in models}


def _indexed_fields(model: type[Document]) -> list[IndexModel]:
    indexes = []
    for name, info in model.model_fields.items():
        attributes = get_index_attributes(info)
        if attributes is not None:
            kind, options = attributes
            indexes.append(IndexModel([(info.alias or name, kind)], **options))
    return indexes


async def index_states(database: Any, models: Iterable[type[Document]]) -> list[IndexState]:
    """Every declared and every existing index (but `_id_`) of the models' collections."""
    states = []
    for collection, declared in declared_indexes(models).items():
        information = await database[collection].index_information()
        existing = {
            name: IndexSpec.of_information(name, spec) for name, spec in information.items() if name != ID_INDEX
        }
        paired = [(model, existing.pop(model.document["name"], None)) for model in declared]
        for model, found in paired:
            found = found or _taking_its_place(IndexSpec.of_model(model), existing)
            states.append(IndexState(collection, model.document["name"], model, found))
        states += [IndexState(collection, name, None, spec) for name, spec in existing.items()]
    return states


def _taking_its_place(declared: IndexSpec, existing: dict[str, IndexSpec]) -> IndexSpec | None:
    """An undeclared index MongoDB would not build the declared one beside (a renamed index, or
    the collection's one text index); it is removed from `existing`."""
    for name, spec in existing.items():
        if spec.identity == declared.identity or (spec.is_text and declared.is_text):
            return existing.pop(name)
    return None


async def create_missing_indexes(database: Any, models: Iterable[type[Document]]) -> list[IndexState]:
    """At start-up: build the declared indexes the store lacks; a changed one is logged, not
    rebuilt (MongoDB would refuse it, and rebuilding a large index belongs to an operator's
    decision), and the service runs on the existing one until `video-analyzer indexes --apply`."""
    states = await index_states(database, models)
    for state in states:
        if state.state == "missing":
            await _create_or_log(database, state)
        elif state.state == "changed":
            logger.error(
                "index %s.%s differs from the declared one; the service uses the existing one until an "
                "operator runs `%s` (it drops and rebuilds it).\n%s",
                state.collection,
                state.name,
                APPLY_COMMAND,
                state.render(),
            )
    return [state for state in states if state.state == "changed"]


async def _create_or_log(database: Any, state: IndexState) -> None:
    try:
        await database[state.collection].create_indexes([state.declared])
    except OperationFailure as error:
        logger.error("index %s.%s was not built: %s; run `%s`", state.collection, state.name, error, APPLY_COMMAND)


async def rebuild_indexes(database: Any, states: Iterable[IndexState]) -> None:
    """Drop each changed index and build the declared one; build each missing one."""
    for state in states:
        if state.state == "changed":
            await database[state.collection].drop_index(state.existing.name)
        if state.state in ("changed", "missing"):
            await database[state.collection].create_indexes([state.declared])
