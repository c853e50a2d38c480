from typing import Annotated

from fastapi import Depends

from service.context import AppContext, get_context
from service.errors import Forbidden
from service.users.dependencies import Caller, current_viewer


async def metrics_reader(context: Annotated[AppContext, Depends(get_context)], user: Caller) -> None:
    """With users on, the metrics are an admin's (an API key will do: it is what a scraper can
    send), unless METRICS_PUBLIC=true."""
    settings = context.settings
    if settings.auth_enabled and not settings.metrics_public:
        viewer = await current_viewer(context, user)
        if viewer is None or not viewer.is_admin:
            raise Forbidden("only an admin can read the metrics (or set METRICS_PUBLIC=true)")
