from typing import Annotated

from fastapi import Depends

from service.context import AppContext, get_context
from service.users.dependencies import Caller, current_viewer


async def docs_reader(context: Annotated[AppContext, Depends(get_context)], user: Caller) -> None:
    """With users on, the API description is for signed-in users, as every other route is,
    unless DOCS_PUBLIC=true (a browser cannot send a bearer token or an API key to open it)."""
    if not context.settings.docs_public:
        await current_viewer(context, user)
