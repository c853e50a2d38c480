"""Who is asking a /v1 route: OpenAI's clients send the API key as a bearer token."""

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.context import AppContext, get_context
from service.errors import Unauthorized
from service.users import service
from service.users.models import User

_bearer = HTTPBearer(auto_error=False, description="an API key (or an access token) as the bearer token")


async def openai_viewer(
    context: Annotated[AppContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User | None:
    """The user whose API key (or access token) is the bearer token; None with users off."""
    if not context.settings.auth_enabled:
        return None
    if credentials is None:
        raise Unauthorized("send your API key as a bearer token: Authorization: Bearer KEY")
    token = credentials.credentials
    user = await service.user_from_api_key(token) or await service.user_from_token(context.settings, token)
    if user is None:
        raise Unauthorized("the API key is invalid or revoked")
    return user


OpenAIViewer = Annotated[User | None, Depends(openai_viewer)]
