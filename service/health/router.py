from typing import Annotated

from fastapi import APIRouter, Depends

from service import __version__
from service.context import AppContext, get_context
from service.health.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(context: Annotated[AppContext, Depends(get_context)]) -> Health:
    """Liveness, and which store is in use (`embedded` or `mongodb`)."""
    return Health(status="ok", database=context.database.kind, version=__version__)
