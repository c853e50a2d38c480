"""Request body limits, security headers, the API docs served without a CDN, TLS and trusted
proxies: on the real server process where memory and connections are the point, in process
elsewhere."""

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.docs.router import DOCS_POLICY
from service.http.headers import DATA_POLICY
from service.users.schemas import Registration
from service.users.service import register
from tests.conftest import SPEECH_VIDEO, serving, upload
from tests.server import ServerProcess, running_server
from tests.store import StoreDatabase, Stores
from tests.test_auth import SECRET, auth_settings, sign_in

MB = 1024 * 1024
AUTH_ENV = {"AUTH_ENABLED": "true", "SECRET_KEY": SECRET}
PASSWORD = "limits-password-1"
MISSING_VIDEO = "0123456789abcdef01234567"
BOUNDARY = "limits-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON = {"content-type": "application/json"}
UPLOAD_PATHS = ["/videos", "/upload-video/"]
MAX_RSS_GROWTH_MB = 20
MAX_SENT_AFTER_REFUSAL = 50 * MB


# Bodies


def form_field(name: str, value: bytes) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"


def file_part(filename: str, content: bytes) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n\r\n'
    return head.encode() + content + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def small_fields() -> Iterator[bytes]:
    """Form fields of 1,000 bytes each, every one with a name of its own, 64 to a chunk."""
    for start in itertools.count(0, 64):
        yield b"".join(form_field(f"field{number}", b"v" * 1000) for number in range(start, start + 64))


class Sender:
    """A body made on the fly, so that the client never holds it, counting what the client took
    of it before the answer came or the server closed the connection."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0

    def stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self.sent >= self.total:
                return
            self.sent += len(chunk)
            yield chunk


def json_chunks() -> Iterator[bytes]:
    return itertools.chain([b'{"question": "'], itertools.repeat(b"x" * 64 * 1024))


# The real server, with users on


@dataclass
class AuthServer:
    server: ServerProcess
    data_dir: Path
    signed_in: dict[str, str]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory, stores: Stores) -> Iterator[AuthServer]:
    """One server for the module's tests, in a database of its own on a MongoDB server."""
    data_dir = tmp_path_factory.mktemp("limits") / "data"
    command = [sys.executable, "-m", "service.cli", "create-user", "--username", "tester"]
    command += ["--email", "tester@example.com", "--password-stdin"]
    with stores.database("limits_auth_server") as store:
        service = {**store.environment, **AUTH_ENV}
        environment = {**os.environ, "DATA_DIR": str(data_dir), **service}
        subprocess.run(command, input=PASSWORD, env=environment, text=True, capture_output=True, check=True, timeout=60)
        with running_server(data_dir, service) as server:
            login = httpx.post(f"{server.base_url}/auth/token", data={"username": "tester", "password": PASSWORD})
            yield AuthServer(server, data_dir, {"Authorization": f"Bearer {login.json()['access_token']}"})


def post_streamed(
    server: ServerProcess, path: str, sender: Sender, chunks: Iterable[bytes], headers: dict[str, str]
) -> httpx.Response:
    """POST a streamed body; check and report the server's peak memory during it, and what was sent."""
    server.reset_peak_memory()
    before = server.memory_mb()
    began = time.perf_counter()
    response = httpx.post(f"{server.base_url}{path}", content=sender.stream(chunks), headers=headers, timeout=60)
    seconds = time.perf_counter() - began
    after = server.memory_mb()
    print(
        f"\nPOST {path}: {response.status_code} after {seconds:.2f} s, {sender.sent / MB:.1f} MB of "
        f"{sender.total / MB:.0f} MB sent; server VmRSS {before['VmRSS']:.1f} MB before, "
        f"{after['VmRSS']:.1f} MB after, peak (VmHWM) {after['VmHWM']:.1f} MB"
    )
    assert after["VmHWM"] - before["VmRSS"] < MAX_RSS_GROWTH_MB
    assert sender.sent < MAX_SENT_AFTER_REFUSAL, "the server kept reading after it had answered"
    assert response.headers["connection"] == "close"
    return response


def test_an_anonymous_200_mb_json_body_is_refused_at_once_in_flat_memory(auth_server: AuthServer) -> None:
    sender = Sender(200 * MB)
    response = post_streamed(auth_server.server, f"/videos/{MISSING_VIDEO}/chat", sender, json_chunks(), JSON)
    assert response.status_code == 413
    assert response.json() == {"detail": "the request body is larger than the limit of 64 KB"}


@pytest.mark.parametrize("path", UPLOAD_PATHS)
def test_400_mb_of_small_form_fields_is_refused_at_once_in_flat_memory(auth_server: AuthServer, path: str) -> None:
    sender = Sender(400 * MB)
    headers = {**MULTIPART, **auth_server.signed_in}
    response = post_streamed(auth_server.server, path, sender, small_fields(), headers)
    assert response.status_code == 413
    assert response.json() == {"detail": "the form has more than 16 fields besides 'file'"}


def test_an_upload_answered_before_it_is_read_closes_the_connection(auth_server: AuthServer) -> None:
    """Anonymous: the 401 comes before the body is read, and the rest of it is not read at all."""
    sender = Sender(400 * MB)
    response = post_streamed(auth_server.server, "/videos", sender, small_fields(), MULTIPART)
    assert response.status_code == 401


def test_a_client_gone_mid_upload_leaves_no_file_and_no_error(auth_server: AuthServer) -> None:
    server = auth_server.server
    head = "".join(f"{name}: {value}\r\n" for name, value in {**MULTIPART, **auth_server.signed_in}.items())
    request = f"POST /videos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {10 * MB}\r\n{head}\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request + file_part("gone.mp4", b"\0" * MB)[:-2])
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while "disconnected before the request body was complete" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert "Traceback" not in server.log()
    assert list((auth_server.data_dir / "uploads" / ".incoming").iterdir()) == []


def raw_exchange(server: ServerProcess, request: bytes) -> bytes:
    """Send bytes, read the answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("path", "length"),
    [(f"/videos/{MISSING_VIDEO}/chat", 64 * 1024 + 1), ("/videos", 10**12)],
    ids=["json", "upload"],
)
def test_a_content_length_over_the_limit_is_refused_before_any_body_is_sent(
    auth_server: AuthServer, path: str, length: int
) -> None:
    """Before authentication, too: the anonymous request gets 413, not 401, with no body sent."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    answer = raw_exchange(auth_server.server, head.encode())
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"connection: close" in rest.lower()
    assert b"is larger than the limit" in rest


def test_the_server_names_no_software(auth_server: AuthServer) -> None:
    response = httpx.get(f"{auth_server.server.base_url}/health")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


# Limits in process


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_json_body_over_max_json_body_kb_is_413(client: httpx.AsyncClient, chunked: bool) -> None:
    body = b'{"question": "' + b"x" * 64 * 1024 + b'"}'

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = await client.post(f"/videos/{MISSING_VIDEO}/chat", content=stream() if chunked else body, headers=JSON)
    assert response.status_code == 413
    assert response.json() == {"detail": "the request body is larger than the limit of 64 KB"}


async def test_the_largest_legal_question_is_well_under_the_limit(client: httpx.AsyncClient) -> None:
    """2,000 characters of four UTF-8 bytes each, written as JSON escapes, with a language."""
    body = json.dumps({"question": "\U0001f600" * 2000, "language": "en"}).encode()
    assert 24_000 < len(body) < 64 * 1024
    response = await client.post(f"/videos/{MISSING_VIDEO}/chat", content=body, headers=JSON)
    assert response.status_code == 404, response.text


async def test_an_upload_over_the_limit_is_413_before_authentication(tmp_path: Path, store: StoreDatabase) -> None:
    settings = auth_settings(tmp_path, store, max_upload_mb=1)
    async with serving(settings) as http:
        body = multipart(file_part("big.mkv", b"\0" * (MB + 65 * 1024)))
        response = await http.post("/videos", content=body, headers=MULTIPART)
    assert response.status_code == 413
    assert response.json() == {"detail": "the upload is larger than the limit of 1 MB"}


async def test_more_form_fields_than_max_form_fields_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    settings.max_form_fields = 2
    fields = [form_field(f"field{number}", b"v") for number in range(3)]
    response = await client.post("/videos", content=multipart(*fields, file_part("a.mp4", b"x")), headers=MULTIPART)
    assert response.status_code == 413
    assert response.json() == {"detail": "the form has more than 2 fields besides 'file'"}


async def test_a_form_field_over_max_form_field_kb_is_413(client: httpx.AsyncClient) -> None:
    body = multipart(form_field("language", b"e" * 4097), file_part("a.mp4", b"x"))
    response = await client.post("/videos", content=body, headers=MULTIPART)
    assert response.status_code == 413
    assert response.json() == {"detail": "the form field 'language' is longer than 4096 bytes"}


async def test_form_fields_count_against_max_upload_mb(client: httpx.AsyncClient, settings: Settings) -> None:
    """A file 500 bytes under the limit passes it (and is then refused as no media); with a
    1,000-byte field beside it, the upload is over the limit."""
    settings.max_upload_mb = 1
    content = file_part("a.mp4", b"\0" * (MB - 500))
    alone = await client.post("/videos", content=multipart(content), headers=MULTIPART)
    assert alone.status_code == 415
    with_field = await client.post(
        "/videos", content=multipart(form_field("note", b"n" * 1000), content), headers=MULTIPART
    )
    assert with_field.status_code == 413
    assert with_field.json() == {"detail": "the upload is larger than the limit of 1 MB"}


async def test_an_upload_filename_over_255_characters_is_422_as_for_patch(client: httpx.AsyncClient) -> None:
    longest = "é" * 251 + ".mp4"
    accepted = await upload(client, SPEECH_VIDEO, filename=longest)
    assert accepted.status_code == 202
    assert accepted.json()["filename"] == longest
    refused = await upload(client, SPEECH_VIDEO, filename="é" + longest)
    assert refused.status_code == 422
    assert refused.json() == {"detail": "the filename is longer than 255 characters"}
    assert len((await client.get("/videos")).json()["items"]) == 1


# Security headers


def assert_security_headers(response: httpx.Response, policy: str) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-security-policy"] == policy


async def test_security_headers_on_every_kind_of_answer(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(viewer: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("service.stats.router.compute_stats", broken)
    answers = {
        "json": (await client.get("/health"), 200, DATA_POLICY),
        "error": (await client.get(f"/videos/{MISSING_VIDEO}"), 404, DATA_POLICY),
        "body limit": (await client.post("/auth/token", content=b"x" * 65 * 1024), 413, DATA_POLICY),
        "unexpected error": (await client.get("/stats"), 500, DATA_POLICY),
        "page": (await client.get("/docs"), 200, DOCS_POLICY),
        "file": (await client.get("/docs/assets/swagger-ui.css"), 200, DATA_POLICY),
    }
    for kind, (response, status, policy) in answers.items():
        assert response.status_code == status, kind
        assert_security_headers(response, policy)


# The API docs


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href", "spec-url") and value]


def links_of(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
DOCS_LINKS = {
    "/docs": ["/docs/assets/swagger-ui.css", "/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js"],
    "/redoc": ["/docs/assets/favicon.png", "/openapi.json", "/docs/assets/redoc.standalone.js"],
}


@pytest.mark.parametrize("page", DOCS_LINKS)
async def test_the_docs_load_everything_from_this_service(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"].startswith("default-src 'self';")
    assert "//" not in response.text, "no address of another origin, with or without a scheme"
    assert links_of(response.text) == DOCS_LINKS[page]
    if page == "/docs":
        assert "url: '/openapi.json'" in response.text
    for link in [*DOCS_LINKS[page], "/openapi.json"]:
        asset = await client.get(link)
        assert asset.status_code == 200, link
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[Path(link).suffix]), link


async def test_only_the_docs_assets_are_served(client: httpx.AsyncClient) -> None:
    """The package's folder holds more (an index.html that loads a spec from petstore.swagger.io)."""
    assert (await client.get("/docs/assets/index.html")).status_code == 404


DOCS = ["/docs", "/redoc", "/openapi.json", "/docs/assets/redoc.standalone.js"]


async def test_with_users_on_the_docs_need_a_user(tmp_path: Path, store: StoreDatabase) -> None:
    settings = auth_settings(tmp_path, store)
    async with serving(settings) as http:
        await register(settings, Registration(username="reader", email="reader@example.com", password=PASSWORD))
        token = (await sign_in(http, "reader", PASSWORD)).json()["access_token"]
        for path in DOCS:
            assert (await http.get(path)).status_code == 401, path
            assert (await http.get(path, headers={"Authorization": f"Bearer {token}"})).status_code == 200, path


async def test_docs_public_opens_the_docs_to_anyone(tmp_path: Path, store: StoreDatabase) -> None:
    async with serving(auth_settings(tmp_path, store, docs_public=True)) as http:
        for path in DOCS:
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/videos")).status_code == 401


# TLS and proxies


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate, key


@pytest.mark.parametrize("how", ["flags", "settings"])
def test_serve_over_https_with_a_self_signed_certificate(tmp_path: Path, store: StoreDatabase, how: str) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    if how == "flags":
        options = {"env": store.environment, "args": ["--ssl-certfile", str(certificate), "--ssl-keyfile", str(key)]}
    else:
        options = {"env": {**store.environment, "SSL_CERTFILE": str(certificate), "SSL_KEYFILE": str(key)}}
    with running_server(tmp_path / "data", ca=certificate, **options) as server:
        assert server.base_url.startswith("https://")
        response = httpx.get(f"{server.base_url}/health", verify=server.verify)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/health")


def logged_client(server: ServerProcess) -> str:
    """The client address the server saw for a GET /health, from its access log."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if '"GET /health?probe HTTP/1.1"' in line:
                return line.split(" - ")[0].split()[-1].rsplit(":", 1)[0]
        time.sleep(0.05)
    raise AssertionError(f"no access log line:\n{server.log()}")


@pytest.mark.parametrize(("trusted", "seen"), [("127.0.0.1", "203.0.113.7"), ("192.0.2.1", "127.0.0.1")])
def test_forwarded_for_is_believed_from_trusted_proxies_only(
    tmp_path: Path, store: StoreDatabase, trusted: str, seen: str
) -> None:
    """The address the login throttle counts failures against is the one the access log shows."""
    with running_server(tmp_path / "data", {**store.environment, "FORWARDED_ALLOW_IPS": trusted}) as server:
        httpx.get(f"{server.base_url}/health?probe", headers={"X-Forwarded-For": "203.0.113.7"})
        assert logged_client(server) == seen


def _answered(connection: socket.socket) -> bytes:
    """What the server sent within the connection's timeout (nothing, if it is still waiting)."""
    try:
        return connection.recv(4096)
    except TimeoutError:
        return b""


def test_a_body_that_stops_arriving_is_408_and_connections_are_capped(tmp_path: Path, store: StoreDatabase) -> None:
    """A trickled or stalled body cannot hold a connection forever, and stalled connections cannot
    pile up past MAX_CONNECTIONS (uvicorn answers 503 beyond it)."""
    env = {**store.environment, "BODY_IDLE_TIMEOUT_SECONDS": "1", "MAX_CONNECTIONS": "3"}
    with running_server(tmp_path / "data", env) as server:
        form = b"Content-Type: application/x-www-form-urlencoded\r\n"
        head = b"POST /auth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n" + form + b"Content-Length: 1000\r\n\r\nusername=a"
        began = time.monotonic()
        answer = raw_exchange(server, head)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"stopped arriving for 1 s" in answer
        assert time.monotonic() - began < 5
        stalled = [socket.create_connection(("127.0.0.1", server.port), timeout=0.5) for _ in range(10)]
        try:
            for connection in stalled:
                connection.sendall(b"POST /auth/token HTTP/1.1\r\nHost: x\r\n" + form + b"Content-Length: 10\r\n\r\nab")
            turned_away = sum(_answered(connection).startswith(b"HTTP/1.1 503 ") for connection in stalled)
        finally:
            for connection in stalled:
                connection.close()
        assert turned_away >= 7, turned_away
        assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200


async def test_every_operation_documents_the_answers_any_request_can_get(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"400", "408", "413"} <= operation["responses"].keys(), (method, path)
    oversized = await client.get("/health", headers={"content-length": str(10**9)})
    assert oversized.status_code == 413
