from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from service.context import AppContext, get_context
from service.observability import service
from service.observability.dependencies import metrics_reader
from service.users.dependencies import CREDENTIALS_OPTIONAL

router = APIRouter(tags=["observability"])

_FORMATS = {
    "text/plain": {"schema": {"type": "string"}},
    "application/openmetrics-text": {"schema": {"type": "string"}},
}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text (OpenMetrics when the Accept header asks)", "content": _FORMATS}},
    dependencies=[Depends(metrics_reader)],
    openapi_extra=CREDENTIALS_OPTIONAL,
)
async def metrics(request: Request, context: Annotated[AppContext, Depends(get_context)]) -> Response:
    """Prometheus metrics: requests, transcription, the language model, and the queue as the store
    holds it now. With users on, for admins only unless METRICS_PUBLIC=true."""
    body, content_type = await service.scrape(request.headers.get("accept"), context.settings.ready_timeout_seconds)
    return Response(body, media_type=content_type)
