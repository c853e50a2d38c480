"""What request ids and metrics cost a request, and what a /metrics scrape costs the store.

    python -m bench.observability [--requests 20000] [--videos 10000] [--scrapes 20]

The request cost: GET /health through the whole application (in process, no network, so that the
middleware's share is not lost in the noise of sockets), with and without the request-id and
metrics middleware, in alternating rounds. The scrape cost: GET /metrics's work (the queue read
from the embedded store, then the text) with that many videos stored, 1% of them queued.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from bench.synthetic import insert_videos
from service.config import Settings
from service.http.headers import SecurityHeaders
from service.http.limits import BodyLimits
from service.main import UPLOAD_PATHS, create_app
from service.observability.service import scrape
from service.processing import queue

ROUNDS = 20
"""Alternating rounds each way; the fastest round of each is the one least disturbed by other work."""
TIMEOUT_SECONDS = 30.0


async def _get(application: FastAPI, stack: ASGIApp, path: str) -> None:
    """One request through `stack`, as `application` would pass it on."""
    scope = {
        "app": application,
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"GET {path} answered {message['status']}")

    await stack(scope, receive, send)


async def _per_request_microseconds(application: FastAPI, stack: ASGIApp, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await _get(application, stack, "/health")
    return (time.perf_counter() - started) / requests * 1e6


async def measure_requests(settings: Settings, requests: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        observed = app.build_middleware_stack()
        bare = SecurityHeaders(BodyLimits(FastAPI.build_middleware_stack(app), settings, UPLOAD_PATHS))
        await _per_request_microseconds(app, observed, 500)
        await _per_request_microseconds(app, bare, 500)
        with_ids, without = [], []
        for _ in range(ROUNDS):
            with_ids.append(await _per_request_microseconds(app, observed, requests // ROUNDS))
            without.append(await _per_request_microseconds(app, bare, requests // ROUNDS))
    print(f"GET /health in process, {requests} requests each way in {ROUNDS} alternating rounds:")
    for name, pick in (("fastest round", min), ("median round", statistics.median)):
        cost = pick(with_ids) - pick(without)
        print(
            f"  {name}: with request ids and metrics {pick(with_ids):.1f} us, without {pick(without):.1f} us, cost {cost:.1f} us"
        )


async def measure_scrapes(settings: Settings, videos: int, scrapes: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await insert_videos(videos, queued_every=100)
        reads, whole = [], []
        for _ in range(scrapes):
            started = time.perf_counter()
            depth = await queue.depth()
            reads.append(time.perf_counter() - started)
            started = time.perf_counter()
            body, _ = await scrape(None, TIMEOUT_SECONDS)
            whole.append(time.perf_counter() - started)
    print(f"/metrics with {videos} videos on the embedded store ({depth.queued} queued), {scrapes} scrapes:")
    print(f"  queue read p50 {_ms(reads, 50)} / p95 {_ms(reads, 95)} ms")
    print(f"  whole scrape p50 {_ms(whole, 50)} / p95 {_ms(whole, 95)} ms, {len(body)} bytes")


def _ms(seconds: list[float], percentile: int) -> str:
    ordered = sorted(seconds)
    return f"{ordered[min(len(ordered) - 1, len(ordered) * percentile // 100)] * 1000:.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        await measure_requests(Settings(_env_file=None, data_dir=Path(folder) / "requests", workers=0), args.requests)
        await measure_scrapes(
            Settings(_env_file=None, data_dir=Path(folder) / "scrapes", workers=0), args.videos, args.scrapes
        )


if __name__ == "__main__":
    asyncio.run(main())
