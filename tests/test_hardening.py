"""No client input reaches a 500: each input here was one, with a stack trace in the log."""

import base64
import logging
from collections.abc import Iterator

import httpx
import pytest

from service.main import create_app
from service.pagination import MAX_ARRAY_OFFSET, MAX_OFFSET, encode_offset

SOME_ID = "0123456789abcdef01234567"
JSON = {"content-type": "application/json"}


def assert_error(response: httpx.Response, status: int) -> str:
    """The answer is `{"detail": string}` with this status; returns the detail."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]
    return body["detail"]


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A refused input is the client's mistake: nothing is logged as an error."""
    yield
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("question", ["   ", "\u00a0", "\u001c"], ids=["spaces", "no-break-space", "separator"])
@pytest.mark.parametrize("legacy", [False, True], ids=["chat", "ask-question"])
async def test_blank_question_is_422_on_both_routes(client: httpx.AsyncClient, question: str, legacy: bool) -> None:
    if legacy:
        response = await client.post("/ask-question/", json={"video_id": SOME_ID, "question": question})
    else:
        response = await client.post(f"/videos/{SOME_ID}/chat", json={"question": question})
    assert "blank" in assert_error(response, 422)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", f"/videos/{SOME_ID}", b'{"is_public": NaN}'),
        ("PATCH", f"/videos/{SOME_ID}", b'{"is_public": -Infinity}'),
        ("POST", f"/videos/{SOME_ID}/chat", b'{"question": "\\ud800 Clara"}'),
        ("POST", "/ask-question/", b'{"video_id": 1, "question": "\\ud800 Clara"}'),
        ("POST", "/ask-question/", b'{"video_id": 1e400, "question": "Where does Clara live?"}'),
        ("POST", "/auth/register", b'{"username": "clara", "email": "cl\\udfffra@example.com", "password": "x"}'),
    ],
    ids=["nan", "infinity", "surrogate", "legacy-surrogate", "out-of-range-float", "surrogate-in-email"],
)
async def test_input_that_json_cannot_echo_is_422(
    client: httpx.AsyncClient, method: str, path: str, body: bytes
) -> None:
    response = await client.request(method, path, content=body, headers=JSON)
    detail = assert_error(response, 422)
    assert "NaN" not in detail and "inf" not in detail.lower()


@pytest.mark.parametrize(
    "body",
    [
        b'{"is_public": ',
        b'{"is_public": tru}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"":' * 10_000 + b"1" + b"}" * 10_000,
        b'{"is_public": 1' + b"0" * 5000 + b"}",
        b'{"is_public": "\xff"}',
    ],
    ids=["cut-short", "bad-token", "deep-array", "deep-object", "5000-digits", "not-utf-8"],
)
async def test_body_that_is_not_json_is_a_client_error(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.patch(f"/videos/{SOME_ID}", content=body, headers=JSON)
    assert response.status_code in (400, 422)
    assert_error(response, response.status_code)


def offset_cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(f"offset:{raw}".encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "b2Zmc2V0OsKy",  # offset:²
        offset_cursor("٣"),
        offset_cursor(" 1"),
        offset_cursor("1_0"),
        offset_cursor("-1"),
        offset_cursor(str(2**63)),
        offset_cursor(str(MAX_OFFSET + 1)),
        offset_cursor("9" * 5000),
    ],
    ids=["superscript", "arabic-indic", "space", "underscore", "negative", "2^63", "past-max", "5000-digits"],
)
@pytest.mark.parametrize(
    ("path", "params"),
    [("/search", {"q": "Clara"}), (f"/videos/{SOME_ID}/chat", {"limit": 100})],
    ids=["search", "chat"],
)
async def test_cursor_is_decoded_strictly(client: httpx.AsyncClient, path: str, params: dict, cursor: str) -> None:
    response = await client.get(path, params={**params, "cursor": cursor})
    assert "cursor" in assert_error(response, 422)


async def test_largest_offsets_reach_the_store(client: httpx.AsyncClient) -> None:
    """The largest offset a search may skip (its page added stays within 64 bits) is answered."""
    response = await client.get("/search", params={"q": "Clara", "limit": 100, "cursor": encode_offset(MAX_OFFSET)})
    assert response.status_code == 200 and response.json() == {"items": [], "next_cursor": None}


async def test_chat_offset_stays_within_what_mongodb_reads_from_a_slice(client: httpx.AsyncClient) -> None:
    """MongoDB reads a `$slice` skip as a 32-bit int: a larger one would wrap around to the start."""
    cursor = encode_offset(MAX_ARRAY_OFFSET + 1)
    assert_error(await client.get(f"/videos/{SOME_ID}/chat", params={"cursor": cursor}), 422)
    found = await client.get(f"/videos/{SOME_ID}/chat", params={"cursor": encode_offset(MAX_ARRAY_OFFSET)})
    assert_error(found, 404)


@pytest.mark.parametrize("path", ["/videos", "/upload-video/"])
async def test_multipart_boundary_past_the_parsers_limit_is_400(client: httpx.AsyncClient, path: str) -> None:
    boundary = "b" * 300
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\nx\r\n--{boundary}--\r\n'
    )
    response = await client.post(
        path, content=body.encode(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "boundary" in assert_error(response, 400).lower()


@pytest.mark.parametrize("path", ["/videos", "/upload-video/"])
async def test_multipart_body_cut_short_is_400(client: httpx.AsyncClient, path: str) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\nxyz'
    response = await client.post(path, content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(response, 400)


@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
@pytest.mark.parametrize("bound", ["uploaded_after", "uploaded_before"])
async def test_search_time_out_of_range_in_utc_is_422(client: httpx.AsyncClient, bound: str, moment: str) -> None:
    response = await client.get("/search", params={"q": "Clara", bound: moment})
    assert bound in assert_error(response, 422)


async def test_search_times_at_the_calendars_ends_are_answered(client: httpx.AsyncClient) -> None:
    params = {"q": "Clara", "uploaded_after": "9999-12-31T23:59:59", "uploaded_before": "0001-01-01T00:00:00+00:00"}
    assert (await client.get("/search", params=params)).status_code == 200


@pytest.mark.parametrize("length", ["²".encode("latin-1"), b"1" * 5000], ids=["superscript", "5000-digits"])
async def test_unreadable_content_length_is_not_trusted(client: httpx.AsyncClient, length: bytes) -> None:
    """An ASGI server may pass any Content-Length on; the upload then reads the body as it comes."""
    headers = [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", length)]
    response = await client.post("/videos", content=b"not multipart", headers=headers)
    assert_error(response, 400)


def operations(schema: dict) -> list[tuple[str, dict]]:
    return [(f"{method.upper()} {path}", op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def test_every_error_answer_is_documented_as_a_string_detail() -> None:
    """Everywhere but the OpenAI-compatible routes, which answer OpenAI's `{"error": {...}}`."""
    schema = create_app().openapi()
    assert "HTTPValidationError" not in str(schema)
    for name, operation in operations(schema):
        shape = "OpenAIError" if name.split(" ", 1)[1].startswith("/v1/") else "ErrorDetail"
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response["content"]["application/json"]["schema"]
                assert content == {"$ref": f"#/components/schemas/{shape}"}, (name, status)
    assert schema["components"]["schemas"]["ErrorDetail"]["properties"]["detail"]["type"] == "string"
    assert schema["components"]["schemas"]["ErrorBody"]["properties"]["message"]["type"] == "string"


def test_statuses_that_follow_from_an_operation_are_documented() -> None:
    for name, operation in operations(create_app().openapi()):
        statuses = set(operation["responses"])
        if operation.get("security"):
            assert {"401", "403"} <= statuses, name
        if "requestBody" in operation:
            assert {"400", "422"} <= statuses, name
        if operation.get("parameters"):
            assert "422" in statuses, name
