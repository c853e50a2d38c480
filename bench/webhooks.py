"""Webhook delivery latency: from the event (the write that completes a video and raises it) to
its arrival at a receiver, through a real server process.

    python -m bench.webhooks [--videos 50] [--workers 1] [--stored 10000]

Starts `video-analyzer serve` on the embedded store with WORKERS in-process workers, and a
receiver on loopback that verifies every signature with the `standardwebhooks` package, subscribed
to `video.completed` through POST /webhooks. Then uploads tests/fixtures/no_audio.mp4 VIDEOS times
twice: paced (each upload once the previous video's event has arrived: one event at a time) and
back to back (the events come while uploads, processing and other deliveries share the store).
Prints the uploads' times (POST /videos, to its 202) and the events' latencies: the payload's
`timestamp`, written by the update that completed the video, to the request's arrival (one clock:
both on this machine).

Then what the periodic look at every video's outbox (each WEBHOOK_POLL_SECONDS, in every process)
costs the embedded store's one thread with STORED completed videos and no event pending.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.synthetic import insert_videos
from service.config import Settings
from service.db.service import connect
from service.webhooks.delivery import relay
from tests.conftest import NO_AUDIO_VIDEO
from tests.server import running_server
from tests.webhook_receiver import Receiver, webhook_receiver


def percentiles(values: list[float]) -> str:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {cuts[49] * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


async def measure_outbox_look(data_dir: Path, stored: int, rounds: int = 20) -> list[float]:
    """Seconds each full relay takes, with `stored` videos and no event pending."""
    settings = Settings(_env_file=None, data_dir=data_dir, workers=0)
    database = await connect(settings)
    try:
        await insert_videos(stored)
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            await relay(settings, {})
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        database.close()


async def upload(http: httpx.AsyncClient, number: int) -> float:
    began = time.perf_counter()
    with NO_AUDIO_VIDEO.open("rb") as file:
        answer = await http.post("/videos", files={"file": (f"clip-{number}.mp4", file)})
    assert answer.status_code == 202, answer.text
    return time.perf_counter() - began


async def measure(
    receiver: Receiver, http: httpx.AsyncClient, videos: int, paced: bool
) -> tuple[list[float], list[float]]:
    """The uploads' seconds, and each event's seconds from its timestamp to its arrival."""
    already = len(receiver.received)
    uploads = []
    for number in range(videos):
        uploads.append(await upload(http, number))
        if paced:
            await receiver.wait_for(already + number + 1)
    arrived = (await receiver.wait_for(already + videos, timeout=300))[already:]
    if not all(request.verified for request in arrived):
        raise SystemExit("a webhook's signature did not verify")
    latencies = [
        request.arrived - datetime.fromisoformat(request.message["timestamp"]).timestamp() for request in arrived
    ]
    return uploads, latencies


async def run(receiver: Receiver, base_url: str, videos: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        created = await http.post("/webhooks", json={"url": receiver.url(), "event_types": ["video.completed"]})
        receiver.secrets["/"] = created.json()["secret"]
        for paced in (True, False):
            uploads, latencies = await measure(receiver, http, videos, paced)
            how = "paced" if paced else "back to back"
            size = NO_AUDIO_VIDEO.stat().st_size
            print(f"{how}: {videos} uploads of {NO_AUDIO_VIDEO.name} ({size} bytes): {percentiles(uploads)}")
            print(f"{how}: video.completed, event to receiver: {percentiles(latencies)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--stored", type=int, default=10_000)
    args = parser.parse_args()
    environment = {"WORKERS": str(args.workers), "WEBHOOK_ALLOW_PRIVATE": "true"}
    with tempfile.TemporaryDirectory() as directory, webhook_receiver() as receiver:
        with running_server(Path(directory) / "data", environment) as server:
            asyncio.run(run(receiver, server.base_url, args.videos))
        looks = asyncio.run(measure_outbox_look(Path(directory) / "stored", args.stored))
    print(f"a look at every outbox, {args.stored} videos stored, none pending: {percentiles(looks)}")


if __name__ == "__main__":
    main()
