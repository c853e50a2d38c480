"""The archive `export` writes and `import` reads: one tar file.

    files/<key>                  each stored file, byte for byte
    collections/<name>.jsonl     each collection, one document per line, in MongoDB canonical
                                 Extended JSON (what `mongoexport --jsonFormat=canonical` writes
                                 and `mongoimport` reads)
    manifest.json                format and version, source, counts, every member's size and sha256

Stored files come first, so that `import`, reading in order, has every file in place before the
documents that refer to them. The manifest comes last because it holds the other members' hashes, known only once they are
written; so a reader reads the whole archive before it trusts any of it. Python's tar reader
stops without an error at a damaged header, so a damaged or cut archive shows up as a missing
manifest or missing members, and is refused like any other mismatch.

The archive is written under a temporary name beside its destination and renamed into place only
once complete (fsynced first), so a failed export leaves no half archive under the name given.
"""

import hashlib
import io
import json
import lzma
import os
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO
from urllib.parse import quote

from bson import json_util
from pydantic import ValidationError

from service.backup.schemas import FORMAT_NAME, FORMAT_VERSION, Manifest, Member
from service.durability import fsync_directory

MANIFEST_NAME = "manifest.json"
COLLECTIONS_DIR = "collections/"
FILES_DIR = "files/"
COPY_BUFFER_BYTES = 1024 * 1024
MANIFEST_MAX_BYTES = 256 * 1024 * 1024
WRITE_JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS
READ_JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)


class ArchiveRefused(Exception):
    """The archive is damaged, cut short, or not one `export` wrote; nothing was written."""


def collection_member(name: str) -> str:
    return f"{COLLECTIONS_DIR}{quote(name, safe='')}.jsonl"


def file_member(key: str) -> str:
    return f"{FILES_DIR}{key}"


def encode_document(document: dict[str, Any]) -> bytes:
    return json_util.dumps(document, json_options=WRITE_JSON_OPTIONS).encode() + b"\n"


def decode_document(line: bytes) -> dict[str, Any]:
    """One line of a collection member; ValueError when it is not a document with an `_id`."""
    try:
        document = json_util.loads(line, json_options=READ_JSON_OPTIONS)
    except Exception as error:  # json_util raises bson's own errors too (InvalidId, for one)
        raise ValueError(str(error) or type(error).__name__) from error
    if not isinstance(document, dict) or "_id" not in document:
        raise ValueError("not a document with an _id")
    return document


class _Hashing:
    """A readable stream that counts and hashes what is read through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def member(self) -> Member:
        return Member(size=self.size, sha256=self.sha256.hexdigest())


@dataclass
class Spool:
    """A collection's lines in an unnamed temporary file (gone with the process), counted."""

    file: BinaryIO
    count: int = 0
    size: int = 0

    def add(self, document: dict[str, Any]) -> None:
        line = encode_document(document)
        self.file.write(line)
        self.size += len(line)
        self.count += 1

    def documents(self) -> Iterator[dict[str, Any]]:
        self.file.seek(0)
        for line in self.file:
            yield decode_document(line)

    def close(self) -> None:
        self.file.close()


class ArchiveWriter:
    """Writes the archive under a temporary name; `finish` renames it into place, and leaving the
    `with` block without `finish` removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        self.members: dict[str, Member] = {}
        self._spools: list[Spool] = []
        self._file: BinaryIO | None = None
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> "ArchiveWriter":
        self._file = open(self.partial, "xb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFFER_BYTES)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for spool in self._spools:
            spool.close()
        if self._file is not None:
            self._file.close()
            self._file = None
            self.partial.unlink(missing_ok=True)

    def spool(self, documents: Iterable[dict[str, Any]]) -> Spool:
        """Encode documents into a temporary file beside the archive: a tar member's size comes
        before its content, and documents are read only once, from the store's snapshot."""
        spool = Spool(tempfile.TemporaryFile(dir=self.path.parent))
        self._spools.append(spool)
        for document in documents:
            spool.add(document)
        return spool

    def add_spool(self, name: str, spool: Spool) -> Member:
        spool.file.flush()
        spool.file.seek(0)
        member = self.add_stream(name, spool.file, spool.size)
        spool.close()
        return member

    def add_stream(self, name: str, stream: IO[bytes], size: int) -> Member:
        """Add `size` bytes read from `stream` in chunks, hashing them on the way."""
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(time.time())
        info.mode = 0o644
        hashing = _Hashing(stream)
        self._open_tar().addfile(info, hashing)
        self.members[name] = member = hashing.member()
        return member

    def finish(self, manifest: Manifest) -> None:
        """Add the manifest, make the archive durable, and rename it into place."""
        data = manifest.model_dump_json(indent=1).encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar = self._open_tar()
        tar.addfile(info, io.BytesIO(data))
        tar.close()
        file = self._file
        assert file is not None
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self._file = None
        self.partial.replace(self.path)
        fsync_directory(self.path.parent)

    def _open_tar(self) -> tarfile.TarFile:
        if self._tar is None:
            raise RuntimeError("the archive is not open")
        return self._tar


# Reading


@dataclass
class VerifiedArchive:
    path: Path
    manifest: Manifest


def verify_archive(path: Path) -> VerifiedArchive:
    """Read the whole archive and hold it against its manifest (format, version, every member's
    size and sha256, counts, every line a document); ArchiveRefused, with one line saying why."""
    if not path.is_file():
        raise ArchiveRefused("no such file")
    try:
        tar = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ArchiveRefused(f"not a tar archive ({_first_line(error)})") from None
    scan = _Scan()
    try:
        with tar:
            for info in tar:
                scan.add(info, tar)
    except _READ_ERRORS as error:
        raise ArchiveRefused(f"a damaged tar archive, or one cut short ({_first_line(error)})") from None
    return VerifiedArchive(path, scan.finish())


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0].rstrip(":")


def members(archive: VerifiedArchive) -> Iterator[tuple[str, IO[bytes]]]:
    """Every member but the manifest, in archive order (stored files first), as a stream."""
    with tarfile.open(archive.path, mode="r:*") as tar:
        for info in tar:
            stream = tar.extractfile(info)
            if info.name != MANIFEST_NAME and stream is not None:
                yield info.name, stream


def read_documents(stream: IO[bytes]) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Each line of a collection member with the document it holds."""
    for line in stream:
        yield line, decode_document(line)


class _Scan:
    """What one pass over the archive found: members' sizes and hashes, lines, the manifest."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.lines: dict[str, int] = {}
        self.manifest: bytes | None = None
        self.unreadable: list[str] = []
        """Lines that are not documents: refused once the hashes are compared (a damaged member
        is better reported as damaged)."""

    def add(self, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        name = _safe_name(info)
        if name in self.members or (name == MANIFEST_NAME and self.manifest is not None):
            raise ArchiveRefused(f"member {name!r} appears twice")
        stream = tar.extractfile(info)
        assert stream is not None  # a regular file, checked above
        if name == MANIFEST_NAME:
            if info.size > MANIFEST_MAX_BYTES:
                raise ArchiveRefused(f"{MANIFEST_NAME} is {info.size} bytes: not a manifest `export` wrote")
            self.manifest = stream.read()
        elif name.startswith(COLLECTIONS_DIR):
            self.members[name], self.lines[name] = _scan_lines(name, stream, self.unreadable)
        else:
            hashing = _Hashing(stream)
            while hashing.read(COPY_BUFFER_BYTES):
                pass
            self.members[name] = hashing.member()

    def finish(self) -> Manifest:
        if self.manifest is None:
            raise ArchiveRefused(
                f"no {MANIFEST_NAME}: not an archive `video-analyzer export` wrote, or one cut short or damaged"
            )
        manifest = _parse_manifest(self.manifest)
        _compare(manifest, self.members, self.lines)
        if self.unreadable:
            raise ArchiveRefused(self.unreadable[0])
        return manifest


def _safe_name(info: tarfile.TarInfo) -> str:
    name = info.name
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or str(path) != name:
        raise ArchiveRefused(f"member {name!r} has an unsafe path (absolute, '..', or not normal)")
    if not info.isreg():
        raise ArchiveRefused(f"member {name!r} is not a regular file")
    return name


def _scan_lines(name: str, stream: IO[bytes], unreadable: list[str]) -> tuple[Member, int]:
    """Hash and count a collection member's lines, noting the first that is not a document."""
    sha256 = hashlib.sha256()
    size = count = 0
    for line in stream:
        sha256.update(line)
        size += len(line)
        count += 1
        if not unreadable:
            try:
                decode_document(line)
            except ValueError as error:
                unreadable.append(f"member {name}: line {count} is not a document in Extended JSON ({error})")
    return Member(size=size, sha256=sha256.hexdigest()), count


def _parse_manifest(raw: bytes) -> Manifest:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ArchiveRefused(f"{MANIFEST_NAME} is not JSON: not an archive `video-analyzer export` wrote") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        found = data.get("format") if isinstance(data, dict) else None
        raise ArchiveRefused(f"not a {FORMAT_NAME} (its manifest says format {found!r})")
    if data.get("version") != FORMAT_VERSION:
        raise ArchiveRefused(
            f"{FORMAT_NAME} version {data.get('version')!r}; this version of the service reads version {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ArchiveRefused(f"{MANIFEST_NAME} is not valid: {where}: {first['msg']}") from None


def _compare(manifest: Manifest, found: dict[str, Member], lines: dict[str, int]) -> None:
    for name in found:
        if name not in manifest.members:
            raise ArchiveRefused(f"member {name} is not in the manifest")
    for name, expected in manifest.members.items():
        actual = found.get(name)
        if actual is None:
            raise ArchiveRefused(f"member {name} is missing (the archive is cut short or damaged)")
        if actual != expected:
            raise ArchiveRefused(f"member {name} is damaged: its size or sha256 differs from the manifest's")
    named = [entry.member for entry in manifest.collections] + [entry.member for entry in manifest.files]
    if sorted(named) != sorted(manifest.members):
        raise ArchiveRefused("the manifest's collections and files do not name its members one for one")
    for entry in manifest.collections:
        if entry.member != collection_member(entry.name) or lines[entry.member] != entry.count:
            raise ArchiveRefused(
                f"collection {entry.name}: {lines.get(entry.member)} documents, the manifest says {entry.count}"
            )
    for file in manifest.files:
        if file.member != file_member(file.key):
            raise ArchiveRefused(f"file {file.key} is stored as {file.member}, not {file_member(file.key)}")
