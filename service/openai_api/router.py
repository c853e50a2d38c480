"""OpenAI-compatible audio endpoints: any OpenAI SDK or tool can transcribe through the service."""

from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from service.context import AppContext, get_context
from service.openai_api import service
from service.openai_api.dependencies import OpenAIViewer
from service.openai_api.schemas import API_PREFIX, MODEL_ALIAS, ModelList, OpenAIError
from service.openapi import ANY_REQUEST_STATUSES, BODY_STATUSES, CREDENTIAL_STATUSES
from service.videos.schemas import MAX_PROMPT_CHARS

router = APIRouter(prefix=API_PREFIX, tags=["openai"])

ANY_REQUEST_ERRORS = (*ANY_REQUEST_STATUSES, *CREDENTIAL_STATUSES, *BODY_STATUSES)
"""What service/openapi.py would add to any operation here, documented with OpenAI's error shape
(a 422 is answered as OpenAI does, as a 400)."""
AUDIO_ERRORS = (*ANY_REQUEST_ERRORS, 404, 409, 503, 504, 507)
"""Besides: a video deleted while awaited, cancelled, the store, waited too long, a full disk (a
file that is not media is a 400, as OpenAI answers it)."""


def _errors(statuses: tuple[int, ...]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": OpenAIError, "description": HTTPStatus(status).phrase} for status in statuses}


def _audio_body(translation: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string", "example": MODEL_ALIAS},
        "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
        "response_format": {"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    }
    if not translation:
        properties["language"] = {"type": "string"}
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        }
    schema = {"type": "object", "required": ["file", "model"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _audio_responses() -> dict[int | str, dict[str, Any]]:
    text = {"schema": {"type": "string"}}
    return {
        200: {
            "description": "the transcript in the response_format asked for",
            "content": {
                "application/json": {},
                "text/plain": text,
                "application/x-subrip": text,
                "text/vtt": text,
            },
        },
        **_errors(AUDIO_ERRORS),
    }


@router.post("/audio/transcriptions", openapi_extra=_audio_body(False), responses=_audio_responses())
async def transcriptions(
    request: Request, context: Annotated[AppContext, Depends(get_context)], viewer: OpenAIViewer
) -> Response:
    """OpenAI's `POST /v1/audio/transcriptions`: the answer comes once the workers are done."""
    return await service.transcribe(
        context,
        viewer,
        request.headers.get("content-type", ""),
        request.stream(),
        "transcribe",
        request.is_disconnected,
    )


@router.post("/audio/translations", openapi_extra=_audio_body(True), responses=_audio_responses())
async def translations(
    request: Request, context: Annotated[AppContext, Depends(get_context)], viewer: OpenAIViewer
) -> Response:
    """OpenAI's `POST /v1/audio/translations`: the speech as English text (a multilingual model is needed)."""
    return await service.transcribe(
        context, viewer, request.headers.get("content-type", ""), request.stream(), "translate", request.is_disconnected
    )


@router.get("/models", responses=_errors(ANY_REQUEST_ERRORS))
async def models(context: Annotated[AppContext, Depends(get_context)], viewer: OpenAIViewer) -> ModelList:
    """OpenAI's `GET /v1/models`: the server's model, also under the name `whisper-1`."""
    return service.models(context)
