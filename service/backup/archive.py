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

A reader takes nothing on trust that could make it write what the service cannot read, or use
what it cannot afford: the tar must be uncompressed (as export writes it: a compressed one can
unpack to far more than its size), its members regular files (not sparse: a sparse member holds
gigabytes of zeros in a few blocks), every line at most LINE_MAX_BYTES, every collection one the
service has and every document valid against its model, and every stored file one a document
refers to, with the size and sha256 it records.

The archive is written under a temporary name beside its destination and renamed into place only
once complete (fsynced first), so a failed export leaves no half archive under the name given.
"""

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO
from urllib.parse import quote

from bson import json_util
from pydantic import ValidationError

from service.backup.documents import collection_models, import_problem
from service.backup.files import FileRef, file_refs
from service.backup.schemas import FORMAT_NAME, FORMAT_VERSION, Manifest, Member
from service.durability import fsync_directory

MANIFEST_NAME = "manifest.json"
COLLECTIONS_DIR = "collections/"
FILES_DIR = "files/"
COPY_BUFFER_BYTES = 1024 * 1024
MANIFEST_MAX_BYTES = 256 * 1024 * 1024
LINE_MAX_BYTES = 64 * 1024 * 1024
"""A document is at most 16 MB of BSON; its canonical Extended JSON is larger (`{"$numberInt": "1"}`
for a 4-byte integer), but not past this."""
LINE_PIECE_BYTES = 1024 * 1024
COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
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


def decode_document(line: bytes | bytearray) -> dict[str, Any]:
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
    size and sha256, counts, every line a valid document, every file one a document records);
    ArchiveRefused, with one line saying why."""
    if not path.is_file():
        raise ArchiveRefused("no such file")
    _refuse_compressed(path)
    try:
        tar = tarfile.open(path, mode="r:")
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


_READ_ERRORS = (tarfile.TarError, EOFError, OSError)


def _refuse_compressed(path: Path) -> None:
    with open(path, "rb") as file:
        head = file.read(8)
    for magic, kind in COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            raise ArchiveRefused(
                f"{kind}-compressed: import reads only the uncompressed tar export writes (decompress it first)"
            )


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0].rstrip(":")


def members(archive: VerifiedArchive) -> Iterator[tuple[str, IO[bytes]]]:
    """Every member but the manifest, in archive order (stored files first), as a stream."""
    with tarfile.open(archive.path, mode="r:") as tar:
        for info in tar:
            stream = tar.extractfile(info)
            if info.name != MANIFEST_NAME and stream is not None:
                yield info.name, stream


def read_documents(name: str, stream: IO[bytes]) -> Iterator[tuple[bytearray, dict[str, Any]]]:
    """Each line of a collection member with the document it holds."""
    for line in read_lines(name, stream):
        yield line, decode_document(line)


def read_lines(name: str, stream: IO[bytes]) -> Iterator[bytearray]:
    """Each line of a collection member; ArchiveRefused at one longer than LINE_MAX_BYTES, read in
    pieces so that no more than that is ever held."""
    number = 0
    while line := _read_line(stream):
        number += 1
        if len(line) > LINE_MAX_BYTES:
            raise ArchiveRefused(
                f"member {name}: line {number} is longer than {LINE_MAX_BYTES // 2**20} MB: "
                "not a document (one is at most 16 MB of BSON)"
            )
        yield line


def _read_line(stream: IO[bytes]) -> bytearray:
    """One line, or LINE_MAX_BYTES and a bit of one."""
    line = bytearray()
    while len(line) <= LINE_MAX_BYTES and (piece := stream.readline(LINE_PIECE_BYTES)):
        line += piece
        if piece.endswith(b"\n"):
            break
    return line


class _Scan:
    """What one pass over the archive found: members' sizes and hashes, lines, the files documents
    refer to, the manifest."""

    def __init__(self) -> None:
        self.models = collection_models()
        self.collections = {collection_member(name): name for name in self.models}
        self.members: dict[str, Member] = {}
        self.lines: dict[str, int] = {}
        self.refs: dict[str, list[FileRef]] = {}
        self.manifest: bytes | None = None
        self.problem: str | None = None
        """The first line that is not a document the service can take: refused once the hashes are
        compared (a damaged member is better reported as damaged)."""

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
            self.members[name], self.lines[name] = self._scan_collection(name, stream)
        else:
            hashing = _Hashing(stream)
            while hashing.read(COPY_BUFFER_BYTES):
                pass
            self.members[name] = hashing.member()

    def _scan_collection(self, member: str, stream: IO[bytes]) -> tuple[Member, int]:
        """Hash and count a collection member's lines, noting the first that cannot be imported."""
        collection = self.collections.get(member)
        if collection is None:
            raise ArchiveRefused(
                f"member {member} is not a collection the service has ({', '.join(sorted(self.models))})"
            )
        sha256 = hashlib.sha256()
        size = count = 0
        for line in read_lines(member, stream):
            sha256.update(line)
            size += len(line)
            count += 1
            if self.problem is None:
                self._check_line(collection, count, line)
        return Member(size=size, sha256=sha256.hexdigest()), count

    def _check_line(self, collection: str, number: int, line: bytearray) -> None:
        try:
            document = decode_document(line)
        except ValueError as error:
            self.problem = f"collection {collection}, line {number}: not a document in Extended JSON ({error})"
            return
        problem = import_problem(self.models[collection], document)
        if problem:
            self.problem = f"collection {collection}, line {number}: {problem}"
            return
        for ref in file_refs(collection, document):
            self.refs.setdefault(ref.key, []).append(ref)

    def finish(self) -> Manifest:
        if self.manifest is None:
            raise ArchiveRefused(
                f"no {MANIFEST_NAME}: not an archive `video-analyzer export` wrote, or one cut short or damaged"
            )
        manifest = _parse_manifest(self.manifest)
        _compare(manifest, self.members, self.lines)
        if self.problem:
            raise ArchiveRefused(self.problem)
        _compare_files(manifest, self.members, self.refs)
        return manifest


def _safe_name(info: tarfile.TarInfo) -> str:
    name = info.name
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or str(path) != name:
        raise ArchiveRefused(f"member {name!r} has an unsafe path (absolute, '..', or not normal)")
    if info.issparse():
        raise ArchiveRefused(f"member {name!r} is a sparse file: export writes none")
    if not info.isreg():
        raise ArchiveRefused(f"member {name!r} is not a regular file (a link, a folder, a device): export writes none")
    return name


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


def _compare_files(manifest: Manifest, found: dict[str, Member], refs: dict[str, list[FileRef]]) -> None:
    """Every stored file must be one a document in the archive refers to, as that document records
    it: import would otherwise write files nothing reads, or a video whose file is not its own."""
    for file in manifest.files:
        member = found[file.member]
        recorded = refs.get(file.key)
        if not recorded:
            raise ArchiveRefused(f"file {file.key}: no document in the archive refers to it")
        for ref in recorded:
            if (ref.size, ref.sha256) != (member.size, member.sha256):
                raise ArchiveRefused(
                    f"file {file.key}: {member.size} bytes with sha256 {member.sha256}, but {ref.collection} "
                    f"{ref.document_id} records {ref.size} bytes with sha256 {ref.sha256}"
                )
