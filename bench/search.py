"""Search latency on the embedded store: transcripts of about 3,000 words each, at each size asked.

    python -m bench.search [--videos 1000 10000] [--queries 100]

First times the tokenizer on one generated transcript: as generated (ASCII), with one accented
word (the text is no longer ASCII), and with every `e` accented (most words hold a non-ASCII
letter, as in French). Then, for each size, stores generated transcripts as completed videos and
closes the store; then a fresh process starts the app on it again and times the start-up, the
first query (which builds the text index from every document), and GET /search through the whole
app (`$text` on the embedded store, ranking, the page's matching moments) for words, phrases and
negations apart. Each time is given twice: as the clock saw it, and as the CPU time the process
spent (all its threads), which other programs on a shared machine do not inflate. Memory is that
process's resident set after the start-up and after the index build, and its peak (VmHWM).
"""

import argparse
import asyncio
import multiprocessing
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench import synthetic
from service.config import Settings
from service.main import create_app
from service.text import words
from service.videos.models import FileInfo, Video

QUERY_KINDS: dict[str, list[Callable[[random.Random], str]]] = {  # every transcript holds every place
    "words": [
        lambda rng: rng.choice(synthetic.OBJECTS).split()[-1],
        lambda rng: f"{rng.choice(synthetic.VERBS)} {rng.choice(synthetic.PLACES).split()[-1]}",
    ],
    "phrases": [lambda rng: f'"{rng.choice(synthetic.OBJECTS).split(" ", 1)[1]}"'],
    "negations": [
        lambda rng: f"{rng.choice(synthetic.OBJECTS).split()[-1]} -{rng.choice(synthetic.PLACES).split()[-1]}",
        lambda rng: f"{rng.choice(synthetic.OBJECTS).split()[-1]} -{rng.randint(2, 900)}",
    ],
}


def queries(rng: random.Random, kind: str, count: int) -> list[str]:
    return [rng.choice(QUERY_KINDS[kind])(rng) for _ in range(count)]


def settings(directory: Path) -> Settings:
    return Settings(_env_file=None, data_dir=directory, workers=0)


async def fill(directory: Path, videos: int, rng: random.Random) -> float:
    """Store `videos` completed videos with generated transcripts; their average word count."""
    app = create_app(settings(directory))
    words = 0
    async with app.router.lifespan_context(app):
        for start in range(0, videos, 100):
            batch = []
            for n in range(start, min(start + 100, videos)):
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
    return words / videos


def memory_mib(field: str) -> float:
    """A field of /proc/self/status in MiB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def percentiles(timings: list[float]) -> str:
    ordered = sorted(timings)
    return f"p50 {statistics.median(ordered):.1f} ms, p95 {ordered[round(len(ordered) * 0.95) - 1]:.1f} ms"


async def timed_search(http: httpx.AsyncClient, query: str) -> tuple[float, float, int]:
    """Milliseconds on the clock and of the process's CPU time, and the results found."""
    began, began_cpu = time.perf_counter(), time.process_time()
    response = await http.get("/search", params={"q": query, "limit": 10})
    elapsed, cpu = (time.perf_counter() - began) * 1000, (time.process_time() - began_cpu) * 1000
    response.raise_for_status()
    return elapsed, cpu, len(response.json()["items"])


async def measure(directory: Path, count: int) -> None:
    """Start the app on a filled store, as a restarted process does, and time its searches."""
    rng = random.Random(5)
    app = create_app(settings(directory))
    began = time.perf_counter()
    async with app.router.lifespan_context(app):
        started = time.perf_counter() - began
        rss_started = memory_mib("VmRSS")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            first, first_cpu, _ = await timed_search(http, queries(rng, "words", 1)[0])
            rss_indexed = memory_mib("VmRSS")
            print(
                f"start-up (store open, documents loaded): {started:.1f} s; first query (builds the text index): "
                f"{first / 1000:.1f} s (CPU {first_cpu / 1000:.1f} s)"
            )
            for kind in QUERY_KINDS:
                results = [await timed_search(http, query) for query in queries(rng, kind, count)]
                hits = statistics.mean(found for _, _, found in results)
                clock = percentiles([elapsed for elapsed, _, _ in results])
                cpu = percentiles([cpu for _, cpu, _ in results])
                print(f"{kind}: {clock} (CPU {cpu}); mean results {hits:.1f}")
    print(
        f"memory: {rss_started:.0f} MiB resident after start-up, {rss_indexed:.0f} MiB after the index build "
        f"(+{rss_indexed - rss_started:.0f} MiB), peak {memory_mib('VmHWM'):.0f} MiB"
    )


def run_measure(directory: Path, count: int) -> None:
    asyncio.run(measure(directory, count))


def measure_in_a_fresh_process(directory: Path, count: int) -> None:
    process = multiprocessing.get_context("spawn").Process(target=run_measure, args=(directory, count))
    process.start()
    process.join()


def tokenizing(rng: random.Random, rounds: int = 200) -> None:
    text = synthetic.transcript(rng, segments=90).text
    variants = {"ASCII": text, "one accented word": f"Café. {text}", "every e accented": text.replace("e", "é")}
    timings = []
    for name, variant in variants.items():
        words(variant)  # the per-code-point tables and caches filled, as after the first documents
        began = time.perf_counter()
        for _ in range(rounds):
            words(variant)
        timings.append(f"{name} {(time.perf_counter() - began) / rounds * 1000:.2f} ms")
    print(f"tokenizing a transcript of {len(text.split())} words: {', '.join(timings)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, nargs="+", default=[1000], help="one run per store size")
    parser.add_argument("--queries", type=int, default=100, help="queries of each kind")
    args = parser.parse_args()
    tokenizing(random.Random(5))
    for videos in args.videos:
        with tempfile.TemporaryDirectory() as directory:
            began = time.perf_counter()
            words = asyncio.run(fill(Path(directory), videos, random.Random(5)))
            print(
                f"{videos} videos, {words:.0f} words each on average (stored in {time.perf_counter() - began:.0f} s); {args.queries} queries of each kind, 10 results a page"
            )
            measure_in_a_fresh_process(Path(directory), args.queries)


if __name__ == "__main__":
    main()
