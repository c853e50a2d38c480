"""The web app with users on, in a real browser against a real server: sign in, an upload that
carries the bearer token, media loaded through a media token (a <video> and an <img> cannot send
the token), making a video public, and signing out."""

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser import collect_console_errors, wait_until_shown
from tests.conftest import SPEECH_VIDEO
from tests.server import ServerProcess, running_server
from tests.store import Stores

SECRET = "w" * 48
USERNAME = "alice"
PASSWORD = "alice-password-1"
USERS_ON = {"AUTH_ENABLED": "true", "SECRET_KEY": SECRET}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, stores: Stores) -> Iterator[ServerProcess]:
    """One server for the module's tests, in a database of its own on a MongoDB server."""
    data_dir = tmp_path_factory.mktemp("web-users") / "data"
    account = ["create-user", "--username", USERNAME, "--email", "alice@example.com", "--password-stdin"]
    with stores.database("web_sign_in") as store:
        service = {**store.environment, **USERS_ON}
        subprocess.run(
            [sys.executable, "-m", "service.cli", *account],
            input=f"{PASSWORD}\n",
            env={**os.environ, "DATA_DIR": str(data_dir), **service},
            check=True,
            capture_output=True,
            text=True,
        )
        with running_server(data_dir, service) as running:
            yield running


def sign_in(page: Page, password: str) -> None:
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_upload_play_share_and_sign_out(page: Page, server: ServerProcess) -> None:
    errors = collect_console_errors(page)
    page.goto(server.base_url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    errors.clear()  # the browser reports the refused login (401) on its console
    sign_in(page, PASSWORD)
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    expect(page.locator("#account-name")).to_have_text(USERNAME)
    assert page.evaluate("Object.keys(localStorage).length") == 0  # the token lives in this tab alone

    page.set_input_files("#file-input", SPEECH_VIDEO)
    opened = page.get_by_role("link", name="open speech.mp4")
    expect(opened).to_be_visible()
    video_id = opened.get_attribute("href").rsplit("/", 1)[1]
    card = page.locator(f'.card[data-video-id="{video_id}"]')
    wait_until_shown(card.locator("img"))
    assert "token=" in card.locator("img").get_attribute("src")

    opened.click()
    page.wait_for_function("() => document.querySelector('video')?.readyState >= 1")
    source = page.locator("video").get_attribute("src")
    assert source.startswith(f"/videos/{video_id}/media?token=")
    anonymous = httpx.get(f"{server.base_url}/videos/{video_id}/media", timeout=10)
    assert anonymous.status_code == 401  # the media token is what let the player in
    assert page.evaluate("document.querySelector('video').duration") == pytest.approx(34.9, abs=0.2)

    page.get_by_role("button", name="Make public").click()
    expect(page.get_by_role("button", name="Make private")).to_be_visible()
    token = page.evaluate("JSON.parse(sessionStorage.getItem('video-analyzer.session')).token")
    shown = httpx.get(f"{server.base_url}/videos/{video_id}", headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert shown.json()["is_public"] is True

    page.reload()
    expect(page.get_by_role("heading", name="speech.mp4")).to_be_visible()  # still signed in
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert token not in page.url
    assert errors == []


def test_an_expired_session_asks_to_sign_in_again(page: Page, server: ServerProcess) -> None:
    page.goto(server.base_url + "/")
    sign_in(page, PASSWORD)
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    page.evaluate(
        """() => {
            const saved = JSON.parse(sessionStorage.getItem('video-analyzer.session'));
            sessionStorage.setItem('video-analyzer.session', JSON.stringify({...saved, token: saved.token + 'x'}));
        }"""
    )
    page.get_by_label("Search every transcript").fill("pancakes")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Your session has ended; sign in again.")).to_be_visible()
    sign_in(page, PASSWORD)
    expect(page.get_by_role("heading", name="Search: pancakes")).to_be_visible()


def test_a_session_that_runs_out_while_the_page_is_open_asks_to_sign_in_again(
    page: Page, server: ServerProcess
) -> None:
    """A token the page knows has run out ends the session at the next request, an action's as
    well as a navigation's, instead of that request going out without it (a 401 shown as an error)."""
    page.clock.install()
    page.goto(server.base_url + "/")
    sign_in(page, PASSWORD)
    page.set_input_files("#file-input", SPEECH_VIDEO)
    page.get_by_role("link", name="open speech.mp4").click()
    expect(page.get_by_role("button", name="Make public")).to_be_visible()

    page.clock.fast_forward("01:01:00")  # past ACCESS_TOKEN_MINUTES, as the page counts it
    page.get_by_role("button", name="Make public").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Your session has ended; sign in again.")).to_be_visible()
    sign_in(page, PASSWORD)
    expect(page.get_by_role("heading", name="speech.mp4")).to_be_visible()

    page.goto(server.base_url + "/#/")
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    uploads: list[str] = []
    page.on("request", lambda request: request.method == "POST" and uploads.append(request.url))
    page.clock.fast_forward("01:01:00")
    page.set_input_files("#file-input", SPEECH_VIDEO)  # an upload (XMLHttpRequest, not fetch)
    expect(page.get_by_text("Your session has ended; sign in again.")).to_be_visible()
    assert uploads == []  # the file is not sent only to be refused
