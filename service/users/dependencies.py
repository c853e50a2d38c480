"""Who is asking. With AUTH_ENABLED=false the service is single-user: the viewer is None and
sees and owns everything."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from service.context import AppContext, get_context
from service.errors import Forbidden, NotFound, Unauthorized
from service.users import service
from service.users.models import User

API_KEY_HEADER = "X-API-Key"

_bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)
_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def optional_user(
    context: Annotated[AppContext, Depends(get_context)],
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> User | None:
    """The user the credentials name; None when none were sent; 401 when they are no good."""
    if not context.settings.auth_enabled or not (api_key or token):
        return None
    user = await _user_of(context, token, api_key)
    if user is None:
        raise Unauthorized("the credentials are invalid, expired or revoked")
    return user


async def _user_of(context: AppContext, token: str | None, api_key: str | None) -> User | None:
    if api_key:
        return await service.user_from_api_key(api_key)
    return await service.user_from_token(context.settings, token) if token else None


async def credentials_recheck(
    context: Annotated[AppContext, Depends(get_context)],
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Callable[[], Awaitable[bool]]:
    """For an answer that lasts (an event stream): asks again whether the request's credentials
    still hold, so that a deactivation or a revocation ends it."""

    async def still_valid() -> bool:
        return not context.settings.auth_enabled or await _user_of(context, token, api_key) is not None

    return still_valid


async def current_viewer(
    context: Annotated[AppContext, Depends(get_context)],
    user: Annotated[User | None, Depends(optional_user)],
) -> User | None:
    if context.settings.auth_enabled and user is None:
        raise Unauthorized("not authenticated: send a bearer token or an X-API-Key header")
    return user


async def current_user(
    context: Annotated[AppContext, Depends(get_context)],
    viewer: Annotated[User | None, Depends(current_viewer)],
) -> User:
    """A signed-in user, for the account's own endpoints (which exist only with users on)."""
    if viewer is None:
        raise NotFound("users are not enabled on this service (AUTH_ENABLED=false)")
    return viewer


async def sent_api_key(api_key: Annotated[str | None, Depends(_api_key)]) -> bool:
    return bool(api_key)


async def password_session(
    user: Annotated[User, Depends(current_user)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> User:
    """A user signed in with a bearer token from a password login, not an API key: a leaked key
    must not be able to mint keys that outlive its revocation."""
    if api_key:
        raise Forbidden("this needs a bearer token from a password login, not an API key")
    return user


async def admin_session(user: Annotated[User, Depends(password_session)]) -> User:
    """An admin signed in with a password: administering accounts mints credentials (a new admin,
    a password), which a leaked API key must not be able to do."""
    if not user.is_admin:
        raise Forbidden("only an admin can do this")
    return user


Viewer = Annotated[User | None, Depends(current_viewer)]
Caller = Annotated[User | None, Depends(optional_user)]
CREDENTIALS_OPTIONAL = {"security": [{}]}
"""`openapi_extra` for a route taking a `Caller`: its description then says that it also serves
requests without credentials (FastAPI lists its security schemes as required)."""
SignedIn = Annotated[User, Depends(current_user)]
PasswordSession = Annotated[User, Depends(password_session)]
Admin = Annotated[User, Depends(admin_session)]
SentApiKey = Annotated[bool, Depends(sent_api_key)]
CredentialsRecheck = Annotated[Callable[[], Awaitable[bool]], Depends(credentials_recheck)]
