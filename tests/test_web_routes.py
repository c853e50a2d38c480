"""GET / answers a browser with the web app and any other client with JSON; the app's files come
from the package, with the page's content policy, public even with users on."""

import re
import tomllib
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.web.service import PAGE_POLICY, STATIC_DIR
from tests.conftest import serving
from tests.store import StoreDatabase

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
IMPORT = re.compile(r'from "\./([\w-]+\.js)"')


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("text/html, application/json;q=0.9", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
        (";;,,text/html;;q=,", False),
    ],
)
async def test_the_page_for_browsers_and_json_for_everyone_else(
    client: httpx.AsyncClient, accept: str, page: bool
) -> None:
    response = await client.get("/", headers={"accept": accept})
    assert response.status_code == 200
    assert "accept" in response.headers["vary"].lower()
    if page:
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == PAGE_POLICY
        assert '<script type="module" src="/web/js/main.js">' in response.text
    else:
        greeting = response.json()
        assert greeting["message"] == "Video Analyzer API is running"  # as the SQLite service answered
        assert greeting["supported_languages"] == ["en"] and greeting["multi_language_support"] is False  # tiny.en
        assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_policy_allows_this_origin_only_and_nothing_inline() -> None:
    directives = dict(directive.split(" ", 1) for directive in PAGE_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in PAGE_POLICY and "http" not in PAGE_POLICY and "blob:" not in PAGE_POLICY


async def test_every_file_the_page_names_is_served(client: httpx.AsyncClient) -> None:
    """From index.html's links down through every module import: each one answers 200 from the
    package, and so does nothing outside it."""
    page = (await client.get("/", headers={"accept": "text/html"})).text
    wanted = re.findall(r'(?:src|href)="(/web/[^"]+)"', page)
    seen: set[str] = set()
    while wanted:
        path = wanted.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-cache"
        if path.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript")
            wanted += [f"/web/js/{name}" for name in IMPORT.findall(response.text)]
    on_disk = {f"/web/{path.relative_to(STATIC_DIR)}" for path in STATIC_DIR.rglob("*") if path.is_file()}
    assert seen == on_disk


@pytest.mark.parametrize("path", ["/", "/web/app.css"])
async def test_a_file_is_revalidated_not_sent_again(client: httpx.AsyncClient, path: str) -> None:
    html = {"accept": "text/html"}
    first = await client.get(path, headers=html)
    again = await client.get(path, headers={**html, "if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["content-security-policy"] == first.headers["content-security-policy"]
    changed = await client.get(path, headers={**html, "if-none-match": '"another"'})
    assert changed.status_code == 200 and changed.content == first.content


@pytest.mark.parametrize("path", ["/", "/web/app.css", "/web/js/main.js", "/docs/assets/swagger-ui.css"])
async def test_the_apps_files_are_sent_whole_whatever_range_is_asked(client: httpx.AsyncClient, path: str) -> None:
    """Nobody needs a part of these small files, and a Range a server does not act on gets the
    whole file (RFC 9110): never a refusal in another shape than every other error's."""
    html = {"accept": "text/html"}
    whole = await client.get(path, headers=html)
    assert whole.status_code == 200 and whole.content
    assert whole.headers.get("accept-ranges") == "none"
    for asked in ("bytes=0-9", "bytes=5-2", "bytes=-0", "bytes=99999999-", "bytes=0-1,3-4", "items=0-1", "bytes=x"):
        answer = await client.get(path, headers={**html, "range": asked, "if-range": whole.headers["etag"]})
        assert answer.status_code == 200, (asked, answer.text)
        assert answer.content == whole.content and "content-range" not in answer.headers


@pytest.mark.parametrize(
    "path", ["/web/missing.js", "/web/../main.py", "/web/%2e%2e/main.py", "/web/js/../../index.html"]
)
async def test_nothing_but_the_apps_files(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["detail"]


async def test_files_are_read_only(client: httpx.AsyncClient) -> None:
    response = await client.post("/web/app.css", content=b"x")
    assert response.status_code == 405
    assert response.json()["detail"]


async def test_the_page_needs_no_user_when_users_are_on(tmp_path: Path, store: StoreDatabase) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", workers=0, auth_enabled=True, secret_key="k" * 48, **store.settings
    )
    async with serving(settings) as client:
        assert (await client.get("/", headers={"accept": "text/html"})).status_code == 200
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/web/js/main.js")).status_code == 200
        assert (await client.get("/videos")).status_code == 401


def test_a_wheel_carries_every_file_of_the_app() -> None:
    """Each of the app's files matches the package data pyproject.toml declares, so an installed
    service (a wheel, the Docker image) serves the same page as this checkout."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["service.web"]
    web = STATIC_DIR.parent
    files = {path for path in web.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")}
    declared = {path for pattern in patterns for path in web.glob(pattern)}
    assert files and files - declared == set()
