"""The web app timed in a real browser: from choosing a file in the page to the first answer
playing its moment; and the weight of every file the page loads.

    python -m bench.web [--runs 3]

Starts `video-analyzer serve` (one worker, the offline `local` provider) and Debian's chromium
through Playwright. Each run opens the library in a fresh browser context, chooses
tests/fixtures/speech.mp4 (35 s of speech) in its file input, waits for the card to show it
completed (live, from the events stream), opens it, asks a question, and clicks the answer's first
citation; the clock stops when the player is playing at the cited moment. The steps between are
printed too. The weight is every file the page's first load fetches from the service (HTML, CSS,
JavaScript modules, icon), as served (the service does not compress) and as gzip -9 would make it.
"""

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, Response, expect

from tests.browser import chromium
from tests.conftest import SPEECH_VIDEO
from tests.server import ServerProcess, running_server

QUESTION = "How do you make pancakes?"
STEPS = ("upload accepted", "completed", "player ready", "answer shown", "playing the cited moment")
PLAYING_AT = """start => {
    const player = document.querySelector('video');
    return !player.paused && player.readyState >= HTMLMediaElement.HAVE_FUTURE_DATA
        && player.currentTime >= start - 0.5 && player.currentTime < start + 1;
}"""


def one_run(browser: Browser, server: ServerProcess) -> list[float]:
    """Seconds from choosing the file to the end of each step."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.base_url + "/")
        expect(page.get_by_role("heading", name="Library")).to_be_visible()
        began = time.perf_counter()
        marks: list[float] = []
        page.set_input_files("#file-input", SPEECH_VIDEO)
        opened = page.locator(".upload-rows li").first.get_by_role("link")
        opened.wait_for()
        marks.append(time.perf_counter() - began)
        video_id = opened.get_attribute("href").rsplit("/", 1)[1]
        page.locator(f'.card[data-video-id="{video_id}"] .status[data-status="completed"]').wait_for(timeout=300_000)
        marks.append(time.perf_counter() - began)
        page.locator(f'.card[data-video-id="{video_id}"] a').click()
        page.wait_for_function("() => document.querySelector('video')?.readyState >= 1")
        marks.append(time.perf_counter() - began)
        page.get_by_label("Your question").fill(QUESTION)
        page.get_by_role("button", name="Ask").click()
        chip = page.locator(".chat-entry:not(.pending) .chip").first
        chip.wait_for()
        marks.append(time.perf_counter() - began)
        start = float(chip.get_attribute("data-start"))
        chip.click()
        page.wait_for_function(PLAYING_AT, arg=start)
        marks.append(time.perf_counter() - began)
        return marks
    finally:
        context.close()


def page_weight(browser: Browser, server: ServerProcess) -> dict[str, bytes]:
    """The body of each of the page's own files (not the API's answers) its first load fetched."""
    bodies: dict[str, bytes] = {}

    def keep(response: Response) -> None:
        path = response.url.removeprefix(server.base_url)
        if path == "/" or path.startswith("/web/"):
            bodies[path] = response.body()

    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("response", keep)
        page.goto(server.base_url + "/")
        expect(page.get_by_role("heading", name="Library")).to_be_visible()
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, chromium() as browser:
        env = {"WORKERS": "1", "LLM_PROVIDER": "local"}
        with running_server(Path(directory) / "data", env) as server:
            bodies = page_weight(browser, server)
            plain = sum(len(body) for body in bodies.values())
            packed = sum(len(gzip.compress(body, 9)) for body in bodies.values())
            print(f"page weight: {len(bodies)} files, {plain / 1024:.1f} KB as served, {packed / 1024:.1f} KB gzip -9")
            for path, body in sorted(bodies.items()):
                print(f"  {path:28} {len(body) / 1024:6.1f} KB  gzip {len(gzip.compress(body, 9)) / 1024:5.1f} KB")
            runs = [one_run(browser, server) for _ in range(args.runs)]
    print(f"\nseconds from choosing {SPEECH_VIDEO.name} in the page, {args.runs} runs (median, min-max):")
    for index, step in enumerate(STEPS):
        values = [run[index] for run in runs]
        print(f"  {step:26} {statistics.median(values):5.2f}  ({min(values):.2f}-{max(values):.2f})")


if __name__ == "__main__":
    main()
