from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from service.context import AppContext, get_context
from service.errors import Forbidden, NotFound
from service.openapi import STORE_WRITE_FAILED, error_responses
from service.users import service
from service.users.dependencies import CREDENTIALS_OPTIONAL, Admin, Caller, PasswordSession, SentApiKey, SignedIn
from service.users.schemas import (
    AccessToken,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyRequest,
    PasswordChange,
    PasswordReset,
    Registration,
    UserOut,
)

router = APIRouter(prefix="/auth", tags=["users"])

Context = Annotated[AppContext, Depends(get_context)]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 409, *STORE_WRITE_FAILED),
    openapi_extra=CREDENTIALS_OPTIONAL,
)
async def register(registration: Registration, context: Context, caller: Caller, by_key: SentApiKey) -> UserOut:
    """Create an account: anyone when ALLOW_REGISTRATION=true, else an admin signed in with a
    password (a bearer token, not an API key). Only an admin creates admins."""
    if not context.settings.auth_enabled:
        raise NotFound("users are not enabled on this service (AUTH_ENABLED=false)")
    if not context.settings.allow_registration or registration.is_admin:
        if caller is None or not caller.is_admin or by_key:
            raise Forbidden("only an admin signed in with a password (not an API key) can create this account")
    return UserOut.of(await service.register(context.settings, registration))


@router.post("/token", responses=error_responses(401, 404, 429, *STORE_WRITE_FAILED))
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], context: Context, request: Request
) -> AccessToken:
    """OAuth2 password flow: form fields `username` and `password`; answers a bearer token."""
    if not context.settings.auth_enabled:
        raise NotFound("users are not enabled on this service (AUTH_ENABLED=false)")
    address = request.client.host if request.client else "unknown"
    return await service.login(context.settings, form.username, form.password, address)


@router.get("/me", responses=error_responses(404))
async def me(user: SignedIn) -> UserOut:
    return UserOut.of(user)


@router.put("/me/password", responses=error_responses(404, *STORE_WRITE_FAILED))
async def change_password(change: PasswordChange, user: PasswordSession, context: Context) -> AccessToken:
    """Change your own password (the current one is checked). Every token issued before stops
    working; use the one answered. API keys stay valid (revoke them one by one)."""
    return await service.change_password(context.settings, user, change.current_password, change.new_password)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, responses=error_responses(404, *STORE_WRITE_FAILED))
async def create_api_key(request: ApiKeyRequest, user: PasswordSession) -> ApiKeyCreated:
    """A new API key for scripts, sent as the X-API-Key header. It is shown this once. Only a
    bearer token from a password login can create keys, never another key."""
    return await service.create_api_key(user, request.name)


@router.get("/api-keys", responses=error_responses(404))
async def list_api_keys(user: SignedIn) -> list[ApiKeyOut]:
    return await service.list_api_keys(user)


@router.delete(
    "/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, *STORE_WRITE_FAILED)
)
async def revoke_api_key(key_id: str, user: SignedIn) -> Response:
    await service.revoke_api_key(user, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", responses=error_responses(404))
async def list_users(admin: Admin) -> list[UserOut]:
    return [UserOut.of(user) for user in await service.list_users()]


@router.post("/users/{user_id}/deactivate", responses=error_responses(404, 409, *STORE_WRITE_FAILED))
async def deactivate_user(user_id: str, admin: Admin) -> UserOut:
    """Every token and API key of the account stops working at once; its videos stay."""
    return UserOut.of(await service.set_active(admin, user_id, active=False))


@router.post("/users/{user_id}/reactivate", responses=error_responses(404, *STORE_WRITE_FAILED))
async def reactivate_user(user_id: str, admin: Admin) -> UserOut:
    return UserOut.of(await service.set_active(admin, user_id, active=True))


@router.put(
    "/users/{user_id}/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, *STORE_WRITE_FAILED),
)
async def reset_password(user_id: str, reset: PasswordReset, admin: Admin, context: Context) -> Response:
    """Set a new password for an account; every token issued before stops working."""
    await service.reset_password(context.settings, admin, user_id, reset.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
