"""The old service's web page, unchanged and served from its own origin by Python's http.server
(as that project served it), runs against this service with only CORS_ORIGINS set: it fills its
language list, uploads, polls the status to completed, asks a question and reads the chat history.

The page is a stand-in (tests/fixtures/old_page): the original carries no licence to copy it. It
makes the original's calls in the same order, and reads the old list, video and chat history routes."""

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import collect_console_errors
from tests.conftest import FIXTURES, SPEECH_VIDEO
from tests.server import ServerProcess, free_port, running_server
from tests.store import Stores

OLD_PAGE = FIXTURES / "old_page"
POLLING_TIMEOUT_MS = 120_000
"""Processing, plus the old page's five seconds between polls."""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """The page's requests are the test's business, not its output."""


@pytest.fixture(scope="module")
def old_page_origin() -> Iterator[str]:
    port = free_port()
    handler = functools.partial(QuietHandler, directory=str(OLD_PAGE))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as http_server:
        thread = threading.Thread(target=http_server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            http_server.shutdown()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stores: Stores, old_page_origin: str) -> Iterator[ServerProcess]:
    """A database of its own on a MongoDB server."""
    with stores.database("old_page") as store:
        env = {**store.environment, "CORS_ORIGINS": old_page_origin, "WORKERS": "1", "LLM_PROVIDER": "local"}
        with running_server(tmp_path_factory.mktemp("old-page") / "data", env) as running:
            yield running


def test_the_old_page_runs_end_to_end(browser: Browser, server: ServerProcess, old_page_origin: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        errors = collect_console_errors(page)
        page.goto(f"{old_page_origin}/index.html?api={server.base_url}")
        languages = page.locator("#videoLanguageSelect option")
        expect(languages.filter(has_text="English")).to_have_count(1)  # besides auto, what the service supports

        page.set_input_files("#fileInput", SPEECH_VIDEO)
        expect(page.locator("#videoInfo")).to_be_visible(timeout=POLLING_TIMEOUT_MS)
        expect(page.locator("#videoDetails")).to_contain_text("speech.mp4")
        expect(page.locator("#videoDetails")).to_contain_text("Interface Language: en")
        expect(page.locator("#videoSummary")).not_to_have_text("No summary available")

        page.locator("#questionInput").fill("Where does Clara live?")
        page.locator("#askButton").click()
        expect(page.locator("#chatHistory .ai-message")).to_contain_text("Lisbon")
        expect(page.locator("#savedHistory li")).to_have_count(1)
        expect(page.locator("#savedHistory li")).to_contain_text("Where does Clara live?")
        expect(page.locator("#videoList li")).to_contain_text("speech.mp4 (completed)")

        page.reload()
        page.get_by_role("button", name="speech.mp4 (completed)").click()
        expect(page.locator("#videoSummary")).not_to_have_text("No summary available")
        expect(page.locator("#savedHistory li")).to_contain_text("Where does Clara live?")
        assert [error for error in errors if "/favicon.ico" not in error] == []  # the old page has no icon
    finally:
        context.close()
