import asyncio
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from service.config import Settings
from service.main import create_app
from service.processing.transcription import Transcriber
from service.text import text_search_language
from service.videos.models import FileInfo, Segment, Transcript, TranscriptionOptions, Video
from tests.browser import ChromiumMissing, chromium
from tests.media import write_raw_video

pytest.register_assert_rewrite("tests.store")  # a plugin (below) this module imports first
from tests.openai_server import FakeOpenAI, fake_openai_server  # noqa: E402  (it imports tests.store)
from tests.store import StoreDatabase  # noqa: E402

pytest_plugins = ("pytester", "tests.store")

FIXTURES = Path(__file__).parent / "fixtures"
SPEECH_VIDEO = FIXTURES / "speech.mp4"
SPEECH_SCRIPT = FIXTURES / "speech.txt"


def normalized_words(text: str) -> str:
    """Lower case, letters and apostrophes alone: a transcript as a word error rate compares it with its script."""
    return " ".join(re.sub(r"[^a-z' ]+", " ", text.lower()).split())


NO_AUDIO_VIDEO = FIXTURES / "no_audio.mp4"
SHORT_TRANSCRIPT = Transcript(
    language="en",
    text="Clara lives by the sea. She bakes pancakes on Sundays.",
    segments=[
        Segment(start=0.0, end=2.5, text="Clara lives by the sea."),
        Segment(start=2.5, end=5.0, text="She bakes pancakes on Sundays."),
    ],
)
"""Two sentences, as a processed video's transcript."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def settings(tmp_path: Path, store: StoreDatabase) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", workers=0, max_upload_mb=8, **store.settings)


@pytest.fixture
def worker_settings(tmp_path: Path, store: StoreDatabase) -> Settings:
    """One worker that polls often, with a short lease and quick retries."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        **store.settings,
        workers=1,
        worker_poll_seconds=0.05,
        job_lease_seconds=3,
        job_retry_base_seconds=0,
        job_max_attempts=2,
    )


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """A scripted OpenAI-compatible server on loopback, for one test."""
    with fake_openai_server() as server:
        yield server


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run (store, workers), and an httpx client talking to it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings) as http:
        yield http


@pytest.fixture(scope="session")
def large_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2.3 MB of real video: larger than the upload's in-memory chunk."""
    return write_raw_video(tmp_path_factory.mktemp("media") / "large.mkv", frames=10)


async def upload(
    http: httpx.AsyncClient,
    path: Path,
    filename: str | None = None,
    headers: dict[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    with path.open("rb") as file:
        return await http.post("/videos", files={"file": (filename or path.name, file)}, data=form, headers=headers)


@pytest.fixture(scope="session")
def speech_transcript() -> Transcript:
    """The committed speech fixture, transcribed once per test session by the real transcriber."""
    settings = Settings(_env_file=None)
    result = Transcriber(settings).transcribe(
        SPEECH_VIDEO, "en", TranscriptionOptions(), 34.894, lambda _: None, threading.Event()
    )
    return result.transcript


def flagged(transcript: Transcript, spoken: str) -> Transcript:
    """The transcript with the segments that say `spoken` flagged low confidence, the others not."""
    segments = [
        segment.model_copy(update={"low_confidence": spoken in segment.text}) for segment in transcript.segments
    ]
    return transcript.model_copy(update={"segments": segments})


async def insert_completed_video(transcript: Transcript, filename: str = "speech.mp4") -> Video:
    """A processed video in the store, as a worker leaves it (file facts aside)."""
    video = Video(
        filename=filename,
        file=FileInfo(key="0" * 32, size=1, sha256="0"),
        status="completed",
        transcript=transcript,
        search_language=text_search_language(transcript.language),
    )
    await video.insert()
    return video


async def finished(http: httpx.AsyncClient, video_id: str, timeout: float = 120.0) -> dict:
    """The video once its processing has completed, failed or was cancelled."""
    async with asyncio.timeout(timeout):
        while True:
            video = (await http.get(f"/videos/{video_id}")).json()
            if video["status"] in ("completed", "failed", "cancelled"):
                return video
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, one per test module. Without it the browser tests fail, saying how to
    install it: they are never skipped in silence."""
    try:
        with chromium() as launched:
            yield launched
    except ChromiumMissing as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a browser context of its own: no cookies, no storage, nothing shared with another test."""
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()
