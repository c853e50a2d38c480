"""Chat latency with the offline `local` provider on a one-hour transcript.

    python -m bench.chat [--questions 50]

Builds a one-hour transcript (600 six-second segments of generated sentences), stores it as a completed video on the embedded store, and times POST /videos/{id}/chat
through the whole app (retrieval, answer, atomic $push) for each question. Prints p50 and p95;
the first question also builds the transcript's retrieval index, and is reported on its own.
"""

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench import synthetic
from service.config import Settings
from service.main import create_app
from tests.conftest import insert_completed_video


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(Settings(_env_file=None, data_dir=Path(directory), workers=0, llm_provider="local"))
        async with app.router.lifespan_context(app):
            one_hour = synthetic.transcript(rng, segments=600)
            video = await insert_completed_video(one_hour, "one-hour.mp4")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
                timings = []
                for question in (synthetic.question(rng) for _ in range(args.questions)):
                    began = time.perf_counter()
                    response = await http.post(f"/videos/{video.id}/chat", json={"question": question})
                    timings.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 201, response.text
    ordered = sorted(timings)
    p95 = ordered[max(0, round(len(ordered) * 0.95) - 1)]
    words = len(one_hour.text.split())
    print(f"one-hour transcript: 600 segments, {words} words; {len(timings)} questions, local provider")
    print(f"first question (builds the index): {timings[0]:.1f} ms")
    print(f"chat latency: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (target p95 < 300 ms)")


if __name__ == "__main__":
    asyncio.run(main())
