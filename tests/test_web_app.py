"""The web app in a real browser (Debian's chromium through Playwright) against a real server
process: upload through the page, live progress, the player following chapters, transcript,
citations and search moments, streamed answers, the video's actions, and a phone's width."""

import base64
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import collect_console_errors, current_time, wait_until_shown
from tests.conftest import SPEECH_VIDEO, sha256_of
from tests.server import ServerProcess, running_server
from tests.store import StoreDatabase, Stores

PROCESSING_TIMEOUT_MS = 120_000
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stores: Stores) -> Iterator[ServerProcess]:
    """One server for the module's tests, in a database of its own on a MongoDB server."""
    with stores.database("web_app") as store:
        env = {**store.environment, "WORKERS": "1", "LLM_PROVIDER": "local"}
        with running_server(tmp_path_factory.mktemp("web") / "data", env) as running:
            yield running


def api(server: ServerProcess, path: str, **params: str) -> dict:
    response = httpx.get(f"{server.base_url}{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def upload_by_api(server: ServerProcess, name: str) -> str:
    with SPEECH_VIDEO.open("rb") as file:
        response = httpx.post(f"{server.base_url}/videos", files={"file": (name, file)}, timeout=30)
    assert response.status_code == 202
    return response.json()["id"]


def wait_for_time(page: Page, seconds: float) -> None:
    """Until the player's currentTime is within a second of `seconds` (Playwright's timeout, 30 s)."""
    page.wait_for_function(
        "seconds => Math.abs(document.querySelector('video')?.currentTime - seconds) < 1", arg=seconds
    )


def test_upload_watch_play_ask_and_search(page: Page, server: ServerProcess) -> None:
    errors = collect_console_errors(page)
    home = page.goto(server.base_url + "/")
    assert home is not None and home.headers["content-security-policy"].startswith("default-src 'self'")
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    page.evaluate(
        """() => {
            window.seenStatuses = [];
            new MutationObserver((changes) => {
                for (const change of changes) {
                    const target = change.target;
                    const shown = target.matches('.status') ? [target] : target.querySelectorAll('.status');
                    for (const node of shown) window.seenStatuses.push(node.dataset.status);
                }
            }).observe(document.querySelector('.library'), {subtree: true, childList: true, attributes: true});
        }"""
    )

    page.get_by_label("Spoken language").select_option(label="English")
    page.set_input_files("#file-input", SPEECH_VIDEO)
    row = page.locator(".upload-rows li").first
    expect(row.get_by_role("link", name="open speech.mp4")).to_be_visible()
    assert row.locator("progress").evaluate("bar => bar.value") == 1
    video_id = row.get_by_role("link").get_attribute("href").rsplit("/", 1)[1]
    assert api(server, f"/video/{video_id}")["user_selected_language"] == "en"  # the language chosen
    card = page.locator(f'.card[data-video-id="{video_id}"]')
    expect(card.locator('.status[data-status="completed"]')).to_be_visible(timeout=PROCESSING_TIMEOUT_MS)
    seen = page.evaluate("window.seenStatuses")
    assert seen[0] in ("queued", "processing") and seen[-1] == "completed", seen  # followed live, never reloaded
    wait_until_shown(card.locator("img"))

    card.get_by_role("link").click()
    expect(page.get_by_role("heading", name="speech.mp4")).to_be_visible()
    page.wait_for_function("() => document.querySelector('video')?.readyState >= 1")
    video = api(server, f"/videos/{video_id}")

    later = video["transcript"]["segments"][3]
    segment = page.locator(".segments button.seek").nth(3)
    segment.focus()
    page.keyboard.press("Enter")
    wait_for_time(page, later["start"])
    expect(segment).to_have_attribute("aria-current", "true")

    chapter = video["summary"]["chapters"][0]
    page.locator(".chapters button").first.click()
    wait_for_time(page, chapter["start"])
    assert current_time(page) < later["start"]

    page.get_by_label("Your question").fill("How do you make pancakes?")
    with page.expect_response(lambda answer: "/chat?stream=true" in answer.url) as streamed:
        page.get_by_role("button", name="Ask").click()
    assert streamed.value.headers["content-type"].startswith("text/event-stream")
    answered = page.locator(".chat-entry:not(.pending)").last
    expect(answered.locator(".chip").first).to_be_visible()
    entry = api(server, f"/videos/{video_id}/chat")["items"][-1]
    expect(answered.locator(".answer")).to_have_text(entry["answer"])
    cited = entry["citations"][0]
    assert cited["start"] > chapter["start"] + 1  # the citation moves the player
    answered.locator(".chip").first.click()
    wait_for_time(page, cited["start"])
    page.wait_for_function("() => !document.querySelector('video').paused")

    page.get_by_label("Search every transcript").fill("bicycle")
    page.get_by_role("button", name="Search").click()
    hits = api(server, "/search", q="bicycle")["items"]
    moment = next(hit for hit in hits if hit["video"]["id"] == video_id)["matches"][0]
    page.locator(f'a.moment[href^="#/videos/{video_id}?"]').first.click()
    expect(page.get_by_role("heading", name="speech.mp4")).to_be_visible()
    wait_for_time(page, moment["start"])
    assert f"t={moment['start']}" in page.url
    assert errors == []


def test_process_again_and_delete(page: Page, server: ServerProcess) -> None:
    video_id = upload_by_api(server, "actions.mp4")
    page.goto(f"{server.base_url}/#/videos/{video_id}")
    status = page.locator(".video-page > .status")
    expect(status).to_have_attribute("data-status", "completed", timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator(".segments button.seek").first).to_be_visible()
    assert page.get_by_role("button", name="Make public").count() == 0  # with users off, every video is everyone's

    page.get_by_role("button", name="Process again").click()
    expect(status).not_to_have_attribute("data-status", "completed")
    expect(status).to_have_attribute("data-status", "completed", timeout=PROCESSING_TIMEOUT_MS)
    assert api(server, f"/videos/{video_id}")["job"]["attempts"] >= 1

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    expect(page.locator(f'.card[data-video-id="{video_id}"]')).to_have_count(0)
    assert httpx.get(f"{server.base_url}/videos/{video_id}", timeout=10).status_code == 404


def test_segments_the_recognizer_was_unsure_of_say_so(page: Page, tmp_path_factory: pytest.TempPathFactory) -> None:
    """With the bar set above any log-probability, every segment is low confidence: each is marked
    in the transcript, and an answer's cited moment and note say so too."""
    env = {"WORKERS": "1", "LLM_PROVIDER": "local", "WHISPER_LOW_CONFIDENCE_LOGPROB": "0"}
    with running_server(tmp_path_factory.mktemp("unsure") / "data", env) as unsure_server:
        video_id = upload_by_api(unsure_server, "unsure.mp4")
        page.goto(f"{unsure_server.base_url}/#/videos/{video_id}")
        status = page.locator(".video-page > .status")
        expect(status).to_have_attribute("data-status", "completed", timeout=PROCESSING_TIMEOUT_MS)
        segments = api(unsure_server, f"/videos/{video_id}")["transcript"]["segments"]
        assert segments and all(segment["low_confidence"] for segment in segments)
        expect(page.locator(".segments button.seek .unsure")).to_have_count(len(segments))
        expect(page.locator(".segments button.seek").first).to_contain_text("(unsure)")

        page.get_by_label("Your question").fill("How do you make pancakes?")
        page.get_by_role("button", name="Ask").click()
        answered = page.locator(".chat-entry:not(.pending)").last
        chip = answered.locator(".chip").first
        expect(chip.locator(".unsure")).to_have_text("(unsure)")
        expect(chip).to_have_attribute("aria-label", re.compile(r"transcribed with low confidence"))
        expect(answered.locator(".note")).to_contain_text("low confidence")


def test_drop_a_file_on_the_upload_panel(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "/")
    zone = page.locator(".drop-zone")
    dropped = page.evaluate_handle(
        """([name, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), (character) => character.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "video/mp4" }));
            return transfer;
        }""",
        ["dropped.mp4", base64.b64encode(SPEECH_VIDEO.read_bytes()).decode()],
    )
    zone.dispatch_event("dragover", {"dataTransfer": dropped})
    expect(zone).to_have_class(re.compile("dragging"))
    zone.dispatch_event("drop", {"dataTransfer": dropped})
    expect(zone).not_to_have_class(re.compile("dragging"))
    opened = page.get_by_role("link", name="open dropped.mp4")
    expect(opened).to_be_visible()
    video_id = opened.get_attribute("href").rsplit("/", 1)[1]
    stored = api(server, f"/videos/{video_id}")
    assert stored["filename"] == "dropped.mp4" and stored["file"]["sha256"] == sha256_of(SPEECH_VIDEO)


def test_the_keyboard_reaches_the_page_in_order(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "/")
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Library")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Choose videos to upload, or drop them here")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Spoken language")).to_be_focused()
    page.get_by_label("Search every transcript").fill("pancakes")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Search: pancakes")).to_be_focused()  # a navigation moves the focus


def test_at_a_phones_width(browser: Browser, server: ServerProcess) -> None:
    video_id = upload_by_api(server, "phone.mp4")
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(server.base_url + "/")
        expect(page.get_by_label("Choose videos to upload, or drop them here")).to_be_visible()
        expect(page.get_by_label("Search every transcript")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.goto(f"{server.base_url}/#/videos/{video_id}")
        expect(page.locator(".video-page > .status")).to_have_attribute(
            "data-status", "completed", timeout=PROCESSING_TIMEOUT_MS
        )
        expect(page.get_by_label("Your question")).to_be_visible()
        player = page.locator("video").bounding_box()
        assert player is not None and player["width"] <= PHONE["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

        unbroken = "W" * 1500  # a word longer than any line: a pasted address, a key held down
        asked = httpx.post(f"{server.base_url}/videos/{video_id}/chat", json={"question": unbroken}, timeout=30)
        assert asked.status_code == 201
        page.reload()
        expect(page.locator(".chat-entry .question")).to_have_text(unbroken)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.get_by_label("Your question").fill("Where is the office?")
        page.get_by_role("button", name="Ask").click()  # nothing covers it
        expect(page.locator(".chat-entry:not(.pending) .question").last).to_have_text("Where is the office?")
        searched = "X" * 400  # within the search box's 500 characters
        page.goto(f"{server.base_url}/#/search?q={searched}")
        expect(page.get_by_text(f"Nothing matches “{searched}”.")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()


def test_live_progress_carries_on_after_the_service_restarts(
    page: Page, tmp_path_factory: pytest.TempPathFactory, store: StoreDatabase
) -> None:
    """A restart breaks the event stream (the browser sees a network error, not an end): the page
    opens it again once the service is back, and follows the video to the end without a reload."""
    data_dir = tmp_path_factory.mktemp("web-restart") / "data"
    first = ServerProcess(data_dir, {**store.environment, "SHUTDOWN_GRACE_SECONDS": "0"})  # no workers: it stays queued
    try:
        video_id = upload_by_api(first, "restart.mp4")
        with page.expect_request(f"{first.base_url}/videos/{video_id}/events"):
            page.goto(first.base_url + "/")
        card = page.locator(f'.card[data-video-id="{video_id}"]')
        expect(card.locator('.status[data-status="queued"]')).to_be_visible()
    finally:
        first.stop()
    page.wait_for_timeout(1000)  # the stream broke and reconnecting fails while the service is down
    second = ServerProcess(data_dir, {**store.environment, "WORKERS": "1", "LLM_PROVIDER": "local"}, port=first.port)
    try:
        expect(card.locator('.status[data-status="completed"]')).to_be_visible(timeout=PROCESSING_TIMEOUT_MS)
    finally:
        second.stop()


@pytest.mark.parametrize(
    ("address", "heading", "shown"),
    [
        ("#/videos/%", "Something went wrong", "no video with id '%'"),  # an escape that does not decode
        ("#/videos/%E0%A4%A", "Something went wrong", "no video with id '%E0%A4%A'"),
        ("#main", "Library", "Upload"),  # a fragment that is no route, as bookmarked from Skip to content
    ],
)
def test_an_address_the_app_cannot_read_still_shows_a_page(
    page: Page, server: ServerProcess, address: str, heading: str, shown: str
) -> None:
    errors = collect_console_errors(page)
    page.goto(f"{server.base_url}/{address}")
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.locator("main")).to_contain_text(shown)
    assert [error for error in errors if "uncaught" in error] == []


def test_the_event_stream_reader_joins_what_the_network_splits(page: Page, server: ServerProcess) -> None:
    """The page's own SSE parser in the browser, fed one byte at a time: a line cut anywhere,
    CRLF split between its two bytes, a character cut inside its UTF-8 bytes, comments, a
    multi-line data field, and a last event never closed by a blank line (dropped, as EventSource does)."""
    page.goto(server.base_url + "/")
    wire = (
        ': keep-alive\r\nevent: delta\r\ndata: {"text": "Lisbon é"}\r\n\r\n'
        'event: entry\ndata: {"a":\ndata: 1}\n\ndata: "no event name"\n\nevent: lost\ndata: 1\n'
    )
    parsed = page.evaluate(
        """async (wire) => {
            const { readEvents } = await import('/web/js/sse.js');
            const bytes = new TextEncoder().encode(wire);
            const body = new ReadableStream({ start(controller) {
                for (const byte of bytes) controller.enqueue(new Uint8Array([byte]));
                controller.close();
            }});
            const events = [];
            for await (const event of readEvents(body)) events.push(event);
            return events;
        }""",
        wire,
    )
    assert parsed == [
        {"event": "delta", "data": json.dumps({"text": "Lisbon é"}, ensure_ascii=False)},
        {"event": "entry", "data": '{"a":\n1}'},
        {"event": "message", "data": '"no event name"'},
    ]


def test_every_file_the_page_loads_comes_from_the_service(page: Page, server: ServerProcess) -> None:
    """Nothing from another host, every file there, and the page's policy leaves nothing to refuse."""
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    errors = collect_console_errors(page)
    page.goto(server.base_url + "/")
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    assert loaded and all(url.startswith(server.base_url + "/") for url in loaded), loaded
    assert {url.removeprefix(server.base_url) for url in loaded} >= {
        "/",
        "/web/app.css",
        "/web/js/main.js",
        "/web/icon.svg",
    }
    assert errors == []
