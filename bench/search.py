"""Search latency on the embedded store: 1,000 transcripts of about 3,000 words each.

    python -m bench.search [--videos 1000] [--queries 100]

Stores generated transcripts as completed videos, then times GET /search through the whole app
(`$text` on the embedded store, ranking, the page's matching moments). The first query also
indexes every document's words (kept until a document's text changes) and is reported apart.
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
from service.videos.models import FileInfo, Video


def queries(rng: random.Random, count: int) -> list[str]:
    shapes = [
        lambda: rng.choice(synthetic.OBJECTS).split()[-1],
        lambda: f"{rng.choice(synthetic.VERBS)} {rng.choice(synthetic.PLACES).split()[-1]}",
        lambda: f'"{rng.choice(synthetic.OBJECTS).split(" ", 1)[1]}"',
        lambda: f"{rng.choice(synthetic.OBJECTS).split()[-1]} -{rng.choice(synthetic.PLACES).split()[-1]}",
    ]
    return [rng.choice(shapes)() for _ in range(count)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(Settings(_env_file=None, data_dir=Path(directory), workers=0))
        async with app.router.lifespan_context(app):
            words = 0
            for start in range(0, args.videos, 100):
                batch = []
                for n in range(start, min(start + 100, args.videos)):
                    transcript = synthetic.transcript(rng, segments=90)
                    words += len(transcript.text.split())
                    batch.append(
                        Video(
                            filename=f"talk-{n}.mp4",
                            file=FileInfo(key="0" * 32, size=1, sha256="0"),
                            status="completed",
                            transcript=transcript,
                        )
                    )
                await Video.insert_many(batch)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
                timings, hits = [], []
                for query in queries(rng, args.queries + 1):
                    began = time.perf_counter()
                    response = await http.get("/search", params={"q": query, "limit": 10})
                    timings.append((time.perf_counter() - began) * 1000)
                    response.raise_for_status()
                    hits.append(len(response.json()["items"]))
    first, rest = timings[0], sorted(timings[1:])
    print(
        f"{args.videos} videos, {words / args.videos:.0f} words each on average; {len(rest)} queries, 10 results a page"
    )
    print(f"first query (indexes every document): {first:.0f} ms")
    print(
        f"search latency: p50 {statistics.median(rest):.1f} ms, p95 {rest[round(len(rest) * 0.95) - 1]:.1f} ms (target p95 < 200 ms); mean results {statistics.mean(hits):.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
