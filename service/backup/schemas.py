"""The archive's manifest, and what `export`, `import` and `check` report."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

FORMAT_NAME = "video-analyzer-archive"
FORMAT_VERSION = 1


class Member(BaseModel):
    """One member of the archive as written: its size and sha256."""

    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class CollectionEntry(BaseModel):
    name: str = Field(min_length=1)
    member: str
    count: int = Field(ge=0)
    indexes: list[dict[str, Any]] = Field(default_factory=list)
    """The index definitions as the source store reported them (for reading; `import` creates the
    service's own indexes, as its start-up does)."""


class FileEntry(BaseModel):
    key: str
    member: str

    @field_validator("key")
    @classmethod
    def _storage_key(cls, key: str) -> str:
        if not (key.isascii() and key.isalnum()):
            raise ValueError(f"not a storage key: {key!r}")
        return key


class Source(BaseModel):
    kind: str
    """`embedded` or `mongodb`."""
    database: str
    consistency: str
    """`snapshot`: one point in time; `collection-by-collection`: see the README."""


class LeftOut(BaseModel):
    """What the archive does not hold of what the store held."""

    damaged_documents: dict[str, list[str]] = Field(default_factory=dict)
    """Damaged documents left out by `export --salvage`: `database.collection` to `_id`s."""
    missing_files: list[str] = Field(default_factory=list)
    changed_files: list[str] = Field(default_factory=list)
    """Stored files whose bytes are not what their documents record (their documents are kept)."""
    deleted_while_exporting: list[str] = Field(default_factory=list)
    """Videos deleted after the snapshot whose file was gone before it could be read: left out whole."""
    problems: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    format: str
    version: int
    created_at: datetime
    source: Source
    collections: list[CollectionEntry]
    files: list[FileEntry]
    members: dict[str, Member]
    left_out: LeftOut = Field(default_factory=LeftOut)


class ExportSummary(BaseModel):
    path: str
    source: Source
    written: bool = False
    collections: dict[str, int] = Field(default_factory=dict)
    files: int = 0
    file_bytes: int = 0
    left_out: LeftOut = Field(default_factory=LeftOut)
    problems: list[str] = Field(default_factory=list)
    """Damage found in the store or its files; without --salvage any of it stops the export."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"source: {self.source.kind}, database {self.source.database}, {self.source.consistency} read"]
        lines.extend(f"  {name}: {count} documents" for name, count in self.collections.items())
        lines.append(f"  files: {self.files} ({self.file_bytes:,} bytes)")
        lines.extend(f"PROBLEM: {problem}" for problem in self.problems)
        for place, keys in self.left_out.damaged_documents.items():
            lines.append(f"LEFT OUT: {place}: {len(keys)} damaged document(s): {', '.join(keys)}")
        lines.extend(f"LEFT OUT: file {description}" for description in self.left_out.missing_files)
        lines.extend(f"LEFT OUT: {difference}" for difference in self.left_out.changed_files)
        lines.extend(f"NOTE: {note}" for note in self.left_out.deleted_while_exporting)
        if not self.written:
            lines.append(
                f"FAILED: nothing was written to {self.path} (run with --salvage to keep every intact document)"
            )
        elif self.ok:
            lines.append(f"OK: {self.path}")
        else:
            lines.append(f"SALVAGED: {self.path} holds everything intact; what is listed above was left out")
        return "\n".join(lines)


class ImportCounts(BaseModel):
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    refused: int = 0


class ImportSummary(BaseModel):
    path: str
    store: str
    collections: dict[str, ImportCounts] = Field(default_factory=dict)
    files_copied: int = 0
    files_skipped: int = 0
    refusals: list[str] = Field(default_factory=list)
    """Why the store refused documents (a unique index, say): the rest was imported."""

    @property
    def ok(self) -> bool:
        return not self.refusals

    def render(self) -> str:
        lines = [
            f"imported {self.path} into the {self.store} store",
            f"{'':<18}{'inserted':>10}{'replaced':>10}{'unchanged':>11}{'refused':>9}",
        ]
        for name, counts in self.collections.items():
            lines.append(
                f"{name:<18}{counts.inserted:>10}{counts.replaced:>10}{counts.unchanged:>11}{counts.refused:>9}"
            )
        lines.append(f"files: {self.files_copied} copied, {self.files_skipped} already there (same sha256)")
        lines.extend(f"REFUSED: {refusal}" for refusal in self.refusals)
        lines.append("OK" if self.ok else "FAILED: the store refused some documents (see REFUSED lines)")
        return "\n".join(lines)


class CheckReport(BaseModel):
    store: str = ""
    collections: dict[str, int] = Field(default_factory=dict)
    """Documents read sound (checksum and BSON on the embedded store), per collection."""
    validated: int = 0
    files_checked: int = 0
    bytes_hashed: int = 0
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [f"store: {self.store}"]
        lines.extend(f"  {name}: {count} documents read" for name, count in self.collections.items())
        lines.append(f"  {self.validated} documents checked against their models")
        lines.append(f"files: {self.files_checked} checked (size and sha256), {self.bytes_hashed:,} bytes hashed")
        lines.extend(f"WARNING: {warning}" for warning in self.warnings)
        lines.extend(f"DAMAGED: {problem}" for problem in self.problems)
        lines.append(
            "OK: the store and its files are sound" if self.ok else f"DAMAGED: {len(self.problems)} problem(s)"
        )
        return "\n".join(lines)
