"""OpenAI's audio API over the service's own pipeline: an upload through the same queue and
workers, awaited, then answered in the format asked for."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

from beanie import PydanticObjectId
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from service.ai.languages import cldr_english_name
from service.config import Settings
from service.context import AppContext
from service.errors import Conflict, InvalidInput, NotFound, StillProcessing, describe_validation_errors, writable
from service.openai_api.schemas import (
    API_PREFIX,
    MODEL_ALIAS,
    ErrorBody,
    ModelCard,
    ModelList,
    OpenAIError,
    SegmentOut,
    TextAnswer,
    TranscriptionForm,
    Usage,
    VerboseAnswer,
    WordOut,
)
from service.processing.service import FINAL_STATUSES, SUBTITLE_FORMATS
from service.processing.transcription import model_name
from service.users.models import User
from service.videos.models import Segment, TranscriptionOptions, TranscriptionTask, Video
from service.videos.service import delete_video, upload_video
from service.videos.upload import ReceivedUpload

logger = logging.getLogger(__name__)

STATUS_POLL_SECONDS = 0.2
CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client hung up first: what the access log and the metrics
record for a transcription nobody waits for any more."""
NOT_TO_BE_RETRIED = frozenset({HTTPStatus.CONFLICT, HTTPStatus.GATEWAY_TIMEOUT, HTTPStatus.INSUFFICIENT_STORAGE})
"""Errors OpenAI's SDKs would retry (409 and 5xx, twice by default) by uploading the file again,
though the first upload is still queued, was cancelled on purpose, or found the disk full:
`x-should-retry: false` tells them not to."""
GRANULARITIES_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
"""OpenAI's SDKs send the list as one `timestamp_granularities[]` field per value."""
ERROR_CODES = {401: "invalid_api_key", 404: "not_found", 413: "file_too_large", 415: "unsupported_file"}
AS_BAD_REQUEST = frozenset({HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.UNSUPPORTED_MEDIA_TYPE})
PROCESS_STARTED = int(time.time())
"""GET /v1/models' `created`: the service does not know when the model was made, so when it loaded it."""
SEEK_FRAMES_PER_SECOND = 100
"""Whisper counts `seek` in mel frames of 10 ms."""


def is_openai_path(path: str) -> bool:
    """Whether a request's errors are answered in OpenAI's shape."""
    return path.startswith(API_PREFIX + "/")


def error_answer_for(path: str, status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error answer: `{"detail": string}`, writable whatever client input the detail quotes;
    on the OpenAI-compatible routes, OpenAI's `{"error": {...}}`."""
    if is_openai_path(path):
        return error_answer(status, detail, headers)
    return JSONResponse(status_code=status, content={"detail": writable(detail)}, headers=headers)


def error_answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error of a /v1 route as OpenAI answers it: a request OpenAI would call invalid, a file it
    cannot decode among them, is a 400."""
    code = ERROR_CODES.get(status)
    if status in AS_BAD_REQUEST:
        status = HTTPStatus.BAD_REQUEST
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = OpenAIError(error=ErrorBody(message=writable(message), type=kind, code=code))
    if status in NOT_TO_BE_RETRIED:
        headers = {**(headers or {}), "x-should-retry": "false"}
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def models(context: AppContext) -> ModelList:
    """The server's model, under its own name and under the name OpenAI's clients send by default."""
    return ModelList(
        data=[
            ModelCard(id=name, created=PROCESS_STARTED, owned_by="video-analyzer")
            for name in (model_name(context.settings), MODEL_ALIAS)
        ]
    )


class _ClientLeft(Exception):
    """The client hung up while its request waited for the transcription."""


class _FormReader:
    """Reads the OpenAI form of an upload as the upload is checked, before anything is kept."""

    def __init__(self, settings_model: str, task: TranscriptionTask) -> None:
        self.settings_model = settings_model
        self.task = task
        self.form = TranscriptionForm(model=MODEL_ALIAS)

    def __call__(self, received: ReceivedUpload) -> TranscriptionOptions:
        fields: dict[str, Any] = dict(received.fields)
        granularities = [value for name in GRANULARITIES_FIELDS for value in received.repeated_fields.get(name, [])]
        if granularities:
            fields["timestamp_granularities"] = granularities
        try:
            self.form = TranscriptionForm.model_validate(fields)
        except ValidationError as error:
            raise InvalidInput(describe_validation_errors(error.errors())) from None
        if self.form.model not in (self.settings_model, MODEL_ALIAS):
            raise InvalidInput(f"the model {self.form.model!r} does not exist; GET /v1/models lists the models")
        if granularities and self.form.response_format != "verbose_json":
            raise InvalidInput("timestamp_granularities needs response_format verbose_json")
        # OpenAI's temperature 0 means: raise it where decoding fails, as Whisper's fallback does.
        return TranscriptionOptions(
            task=self.task,
            prompt=self.form.prompt,
            temperature=self.form.temperature or None,
            word_timestamps="word" in self.form.timestamp_granularities or None,
        )


async def transcribe(
    context: AppContext,
    viewer: User | None,
    content_type: str,
    body: AsyncIterator[bytes],
    task: TranscriptionTask,
    client_left: Callable[[], Awaitable[bool]],
) -> Response:
    """Upload, wait until the workers are done with it, answer; the video is kept like any upload
    unless OPENAI_API_KEEP_UPLOADS=false. A client that hangs up ends the wait: its kept video goes
    on through the queue like any upload (GET /videos finds it), one not kept is deleted, which
    stops its worker too."""
    reader = _FormReader(model_name(context.settings), task)
    video = await upload_video(context, viewer, content_type, body, read_options=reader)
    try:
        done = await _finished(video.id, context.settings, client_left)
        return await _answer(done, reader.form, task)
    except _ClientLeft:
        logger.info("video %s: the client left before its transcription was done", video.id)
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    finally:
        if not context.settings.openai_api_keep_uploads:
            await delete_video(context, str(video.id), viewer)


async def _finished(
    video_id: PydanticObjectId, settings: Settings, client_left: Callable[[], Awaitable[bool]]
) -> Video:
    collection = Video.get_motor_collection()
    wait_seconds = settings.openai_api_wait_seconds
    try:
        async with asyncio.timeout(wait_seconds):
            while True:
                document = await collection.find_one({"_id": video_id}, {"status": 1})
                if document is None:
                    raise NotFound("the video was deleted before its transcription was done")
                if document["status"] in FINAL_STATUSES:
                    break
                if await client_left():
                    raise _ClientLeft
                await asyncio.sleep(STATUS_POLL_SECONDS)
    except TimeoutError:
        follow = (
            f"GET /videos/{video_id} follows it"
            if settings.openai_api_keep_uploads
            else "the upload was not kept (OPENAI_API_KEEP_UPLOADS=false)"
        )
        raise StillProcessing(
            f"not transcribed within {wait_seconds:g} s (OPENAI_API_WAIT_SECONDS); {follow}"
        ) from None
    video = await Video.get(video_id)
    if video is None:
        raise NotFound("the video was deleted before its transcription was done")
    return video


async def _language_name(code: str | None) -> str:
    """The language as OpenAI names it in `verbose_json`: its English name in lower case (`english`),
    from the CLDR; the code itself where the CLDR has no name."""
    if not code:
        return ""
    name = await asyncio.to_thread(cldr_english_name, code)
    return name.lower() if name else code


async def _answer(video: Video, form: TranscriptionForm, task: TranscriptionTask) -> Response:
    if video.status == "cancelled":
        raise Conflict("the transcription was cancelled")
    if video.status == "failed" or video.transcript is None:
        raise InvalidInput(f"the transcription failed: {video.job.error}")
    transcript = video.transcript
    duration = video.metadata.duration or (transcript.segments[-1].end if transcript.segments else 0.0)
    usage = Usage(seconds=round(duration, 3))
    if form.response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if form.response_format in SUBTITLE_FORMATS:
        render, media_type = SUBTITLE_FORMATS[form.response_format]
        return PlainTextResponse(await asyncio.to_thread(render, transcript), media_type=media_type)
    if form.response_format == "json":
        return JSONResponse(TextAnswer(text=transcript.text, usage=usage).model_dump())
    verbose = VerboseAnswer(
        task=task,
        language=await _language_name(transcript.language),
        duration=round(duration, 3),
        text=transcript.text,
        segments=[_segment_out(number, s) for number, s in enumerate(transcript.segments)]
        if "segment" in form.timestamp_granularities
        else None,
        words=[WordOut(word=w.word, start=w.start, end=w.end) for s in transcript.segments for w in s.words or []]
        if "word" in form.timestamp_granularities
        else None,
        usage=usage,
    )
    return JSONResponse(verbose.model_dump(exclude_none=True))


def _segment_out(number: int, segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=number,
        seek=round(segment.start * SEEK_FRAMES_PER_SECOND),
        start=segment.start,
        end=segment.end,
        text=segment.text,
        tokens=[],
        temperature=segment.temperature or 0.0,
        avg_logprob=segment.avg_logprob or 0.0,
        compression_ratio=segment.compression_ratio or 0.0,
        no_speech_prob=segment.no_speech_prob or 0.0,
    )
