"""Chromium driven by Playwright for the browser tests and the web benchmark: Debian's `chromium`
package, never a browser Playwright downloads."""

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, sync_playwright

INSTALL_CHROMIUM = (
    "the browser tests need Debian's chromium package, which is not installed: "
    "run `sudo apt-get update && sudo apt-get install -y chromium` (.ci/run does this itself), "
    "then run the tests again; no browser is ever downloaded by Playwright"
)


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise ChromiumMissing(INSTALL_CHROMIUM)
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path())
        try:
            yield browser
        finally:
            browser.close()


def collect_console_errors(page: Page) -> list[str]:
    """The page's console errors as they come: a refused resource, an exception, a content
    security policy violation."""
    errors: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url', '')})")

    page.on("console", keep)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors


def current_time(page: Page) -> float:
    return page.eval_on_selector("video", "player => player.currentTime")


def wait_until_shown(image: Locator) -> None:
    """Until the <img> has loaded a picture (its naturalWidth), within Playwright's timeout."""
    image.page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
