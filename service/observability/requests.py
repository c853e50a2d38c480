"""Each request's id and metrics, outside everything else the app does to a request."""

import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability import correlation
from service.observability.metrics import UNMATCHED_ROUTE, observe_request

UNANSWERED_STATUS = 500
"""What a request that raised before any answer began is counted as: the server answers it 500."""


class ObservedRequests:
    """Pure ASGI middleware, around the whole app.

    Each request goes by the id it carried in X-Request-ID (when sane) or a new one, is answered
    with it in X-Request-ID whatever answers it, and has it in the logging context while it is
    served (uvicorn's access line included, written as the answer starts). When the app raises,
    the id stays set: the server logs the exception once the app has returned, still in this
    request's own task, and that line belongs to the request too.

    Each request is counted by method, route template and status, and timed to the end of its
    answer. The route is the template the router matched (`/videos/{video_id}`), never the path
    itself, so that the number of series stays bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = correlation.request_id_for(Headers(scope=scope).get(correlation.REQUEST_ID_HEADER))
        root_path = scope.get("root_path", "")
        started = time.perf_counter()
        status = UNANSWERED_STATUS

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[correlation.REQUEST_ID_HEADER] = request_id
            await send(message)

        token = correlation.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_observed)
        finally:
            observe_request(scope["method"], _route_template(scope, root_path), status, time.perf_counter() - started)
        correlation.request_id.reset(token)


def _route_template(scope: Scope, root_path: str) -> str:
    """The route the router chose, as its template. A mounted app (the web app's files) leaves no
    route in the scope, only its prefix added to the root path: it is `PREFIX/{path}`."""
    route = scope.get("route")
    if route is not None:
        return route.path
    mounted = scope.get("root_path", "").removeprefix(root_path)
    return f"{mounted}/{{path}}" if mounted else UNMATCHED_ROUTE
