"""`GET /`: the web app for a browser, a JSON greeting for any other client. The app's files are
mounted under /web by create_app (a router cannot carry a mount)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from service.context import AppContext, get_context
from service.web import service
from service.web.schemas import ServiceGreeting

router = APIRouter(tags=["web"])

PAGE_ANSWER = {
    200: {
        "description": "the web app to a client that prefers text/html, else the JSON greeting",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


@router.get("/", response_model=ServiceGreeting, responses=PAGE_ANSWER)
async def home(request: Request, response: Response, context: Annotated[AppContext, Depends(get_context)]) -> Any:
    """The web app when the request prefers text/html (a browser); otherwise which service this is."""
    if service.wants_page(request.headers.get("accept", "")):
        return await service.page(request.headers)
    response.headers["vary"] = "Accept"
    return await service.greeting(context.settings)
