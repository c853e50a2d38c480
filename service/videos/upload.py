"""Receiving a multipart upload as a stream, straight into storage.

Starlette's own form parsing spools the whole file to a temporary file before the handler runs,
so the size limit would be checked only after the whole body was on disk, and every byte would be
written twice. python-multipart's streaming parser lets the body go to its final disk location in
bounded memory while it is hashed, counted, and cut off at the limit. The form fields beside the
file are few and short, and their bytes count against the same limit as the file's.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.config import Settings
from service.errors import BadRequest, InvalidInput, PayloadTooLarge
from service.storage.local import IncomingFile
from service.videos.schemas import MAX_FILENAME_LENGTH

FILE_FIELD = "file"
FLUSH_BYTES = 1024 * 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class UploadLimits:
    total_bytes: int
    """The file and the form fields' values together (MAX_UPLOAD_MB)."""
    fields: int
    """Form fields besides the file (MAX_FORM_FIELDS)."""
    field_bytes: int
    """Each form field's value (MAX_FORM_FIELD_KB)."""

    @classmethod
    def of(cls, settings: Settings) -> "UploadLimits":
        return cls(settings.max_upload_bytes, settings.max_form_fields, settings.max_form_field_kb * 1024)


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    size: int
    sha256: str
    fields: dict[str, str]
    """Each form field's last value."""
    repeated_fields: dict[str, list[str]]
    """Each form field's values in the order sent (`timestamp_granularities[]` comes once per value)."""


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)


def _malformed(error: FormParserError) -> BadRequest:
    return BadRequest(f"the multipart body is malformed: {error}")


class MultipartUploadReceiver:
    """Parses one multipart body: the `file` part goes to disk, a few small text fields are kept."""

    def __init__(self, destination: Path, limits: UploadLimits) -> None:
        self.sink = IncomingFile(destination)
        self.limits = limits
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.repeated_fields: dict[str, list[str]] = {}
        self._received = 0
        self._field_count = 0
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._pending = bytearray()
        self._in_file = False
        self._file_seen = False
        self._complete = False

    async def receive(self, content_type: str, body: AsyncIterator[bytes]) -> ReceivedUpload:
        parser = self._parser(content_type)
        try:
            async for chunk in body:
                self._feed(parser, chunk)
                if len(self._pending) >= FLUSH_BYTES:
                    await self._flush()
            self._feed(parser, None)
            if not self._complete:
                raise BadRequest("the multipart body ended before its closing boundary")
            await self._flush()
            if not self._file_seen:
                raise InvalidInput(f"the multipart field '{FILE_FIELD}' with a file is required")
            stored = await asyncio.to_thread(self.sink.finish)
        except BaseException:
            await asyncio.to_thread(self.sink.discard)
            raise
        return ReceivedUpload(
            path=self.sink.path,
            filename=self.filename or "",
            size=stored.size,
            sha256=stored.sha256,
            fields=self.fields,
            repeated_fields=self.repeated_fields,
        )

    def _parser(self, content_type: str) -> MultipartParser:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInput("the body must be multipart/form-data with a 'file' field")
        try:
            return MultipartParser(boundary, self._callbacks())
        except FormParserError as error:
            raise _malformed(error) from None

    def _callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    @staticmethod
    def _feed(parser: MultipartParser, chunk: bytes | None) -> None:
        """Parse one chunk of the body (None: the end of it)."""
        try:
            if chunk is None:
                parser.finalize()
            else:
                parser.write(chunk)
        except FormParserError as error:
            raise _malformed(error) from None

    async def _flush(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            await asyncio.to_thread(self.sink.write, data)

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_end(self) -> None:
        self._part.headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition"))
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = options.get(b"filename")
        self._part.filename = None if raw_filename is None else raw_filename.decode("utf-8", "replace")
        self._in_file = self._part.name == FILE_FIELD and self._part.filename is not None
        if self._in_file:
            self._begin_file(self._part.filename or "")
        else:
            self._field_count += 1
            if self._field_count > self.limits.fields:
                raise PayloadTooLarge(f"the form has more than {self.limits.fields} fields besides '{FILE_FIELD}'")

    def _begin_file(self, filename: str) -> None:
        if self._file_seen:
            raise InvalidInput(f"send exactly one '{FILE_FIELD}'")
        if len(filename) > MAX_FILENAME_LENGTH:
            raise InvalidInput(f"the filename is longer than {MAX_FILENAME_LENGTH} characters")
        self._file_seen = True
        self.filename = filename

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._received += end - start
        if self._received > self.limits.total_bytes:
            raise PayloadTooLarge(f"the upload is larger than the limit of {self.limits.total_bytes // MIB} MB")
        if self._in_file:
            self._pending.extend(data[start:end])
            return
        self._part.text.extend(data[start:end])
        if len(self._part.text) > self.limits.field_bytes:
            raise PayloadTooLarge(f"the form field '{self._part.name}' is longer than {self.limits.field_bytes} bytes")

    def _on_end(self) -> None:
        self._complete = True

    def _on_part_end(self) -> None:
        if not self._in_file and self._part.name:
            value = self._part.text.decode("utf-8", "replace")
            self.fields[self._part.name] = value
            self.repeated_fields.setdefault(self._part.name, []).append(value)
        self._in_file = False
