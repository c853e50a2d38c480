from typing import Annotated

from fastapi import APIRouter, Depends

from service import __version__
from service.context import AppContext, get_context
from service.health import service
from service.health.schemas import Health, Readiness
from service.openapi import error_responses

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(context: Annotated[AppContext, Depends(get_context)]) -> Health:
    """Liveness, and which store is in use (`embedded` or `mongodb`)."""
    return Health(status="ok", database=context.database.kind, version=__version__)


@router.get("/ready", responses=error_responses(503))
async def ready(context: Annotated[AppContext, Depends(get_context)]) -> Readiness:
    """Readiness: 200 when the store answers (MongoDB a ping; the embedded store open and its file
    writable), and with STORAGE=gridfs GridFS too, within READY_TIMEOUT_SECONDS; 503 with the reason
    otherwise."""
    return await service.readiness(context)
