"""The API description's error answers, all from here.

A route declares the statuses its own work answers: `responses=error_responses(404, 409)`. The
ones that follow from what the description already says of an operation are added to every one:
422 where it takes parameters or a body, 401 and 403 where it takes credentials, and on every
operation 400, 408 and 413, because any request may carry a body (the body limits count it on every
route, a body that stops arriving is 408, and one cut short or unparseable is 400). Each is the
`{"detail": string}` the service sends;
FastAPI's default 422 schema (a list of errors echoing the input) is replaced, since the service
never sends it.
"""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

STORE_WRITE_FAILED = (503, 507)
"""A write the store refused: 507 for a full disk or a full document, 503 for anything else."""
ANY_REQUEST_STATUSES = (400, 408, 413)
BODY_STATUSES = (422,)
CREDENTIAL_STATUSES = (401, 403)

_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorDetail"}
_FASTAPI_422_SCHEMA = {"$ref": "#/components/schemas/HTTPValidationError"}
_FASTAPI_422_COMPONENTS = ("HTTPValidationError", "ValidationError")


class ErrorDetail(BaseModel):
    """Every error answer."""

    detail: str = Field(description="what went wrong and, where it can, what to do about it")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the `{"detail": string}` schema, as JSON whatever
    the route's own media type (an event stream's 404 is JSON too)."""
    return {status: _error_answer(status) for status in statuses}


def _error_answer(status: int) -> dict[str, Any]:
    return {"description": HTTPStatus(status).phrase, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


def describe_errors(app: FastAPI) -> None:
    """Make `app.openapi()` list every operation's error answers (see the module's docstring)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI until its routes change; adding errors is idempotent
        _add_error_answers(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_answers(schema: dict[str, Any]) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            _document(operation["responses"], _implied_statuses(operation))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_422_COMPONENTS:
        components.pop(name, None)
    components["ErrorDetail"] = ErrorDetail.model_json_schema()


def _implied_statuses(operation: dict[str, Any]) -> set[int]:
    statuses = set(ANY_REQUEST_STATUSES)
    if "422" in operation["responses"]:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.update(BODY_STATUSES)
    if operation.get("security"):
        statuses.update(CREDENTIAL_STATUSES)
    return statuses


def _document(responses: dict[str, Any], statuses: set[int]) -> None:
    """Adds each status not yet listed, or listed with FastAPI's default 422 schema; orders them by status."""
    for status in statuses:
        listed = responses.get(str(status))
        if listed is None or _json_schema(listed) == _FASTAPI_422_SCHEMA:
            responses[str(status)] = _error_answer(status)
    ordered = sorted(responses.items())
    responses.clear()
    responses.update(ordered)


def _json_schema(response: dict[str, Any]) -> Any:
    return response.get("content", {}).get("application/json", {}).get("schema")
