"""How fast the SQLite migration runs into the embedded store, and how much memory it takes.

    python -m bench.migrate [--videos 10000] [--chat 50000] [--batch-size 500]

Builds a legacy database of the deployed schema (transcriptions of a few KB of sentence-like
text, chat rows spread unevenly over the videos, some without a timestamp), migrates it with
`run_migration` as `video-analyzer migrate-sqlite` does, and prints rows per second and the
process's peak resident memory (ru_maxrss); then runs it again over the migrated store.
"""

import argparse
import asyncio
import random
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from service.config import Settings
from service.migration.service import MigrationOptions, run_migration
from service.migration.source import DEPLOYED_SCHEMA_SQL

WORDS = (
    "the we today our team new product launch market customer data model results quarter growth plan "
    "design meeting question answer video speech example first second next because however important "
    "people project system review budget timeline feature release users feedback support sales report"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 18))]
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])


def _text(rng: random.Random, min_bytes: int, max_bytes: int) -> str:
    target = rng.randint(min_bytes, max_bytes)
    sentences: list[str] = []
    size = 0
    while size < target:
        sentences.append(_sentence(rng))
        size += len(sentences[-1]) + 1
    return " ".join(sentences)


def _moment(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S.%f")


def _videos(count: int, rng: random.Random) -> Iterator[tuple]:
    start = datetime(2023, 1, 1)
    for n in range(1, count + 1):
        status = rng.choices(["completed", "failed", "pending"], weights=[90, 5, 5])[0]
        done = status == "completed"
        yield (
            n,
            f"meeting-{n:05d}.mp4",
            f"./uploads/{n:05d}_meeting.mp4",
            _text(rng, 2_000, 6_000) if done else None,
            _text(rng, 300, 800) if done else None,
            status,
            "Transcription service timed out" if status == "failed" else None,
            _moment(start, n * 3600),
            _moment(start, n * 3600 + 300) if done else None,
            rng.choice(["en", "ja"]) if done else None,
            rng.choice([None, "auto", "en", "ja"]),
            rng.choice(["en", "ja"]),
            "azure_speech" if done else None,
        )


def _chat(count: int, videos: int, rng: random.Random) -> Iterator[tuple]:
    start = datetime(2023, 1, 1)
    for n in range(1, count + 1):
        video = min(videos, 1 + int(rng.expovariate(3 / videos)))  # earlier videos have more chat
        timestamp = None if n % 50 == 0 else _moment(start, video * 3600 + 600 + n)
        yield (n, video, _sentence(rng), _text(rng, 200, 900), timestamp, rng.choice(["en", "ja"]))


def build(path: Path, videos: int, chat: int) -> None:
    rng = random.Random(6)
    connection = sqlite3.connect(path)
    connection.executescript(DEPLOYED_SCHEMA_SQL)
    connection.executemany(f"INSERT INTO videos VALUES ({', '.join('?' * 13)})", _videos(videos, rng))
    connection.executemany("INSERT INTO chat_history VALUES (?, ?, ?, ?, ?, ?)", _chat(chat, videos, rng))
    connection.commit()
    connection.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--chat", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "legacy.db"
        began = time.perf_counter()
        build(source, args.videos, args.chat)
        print(f"built {source.stat().st_size / 1e6:.1f} MB SQLite database in {time.perf_counter() - began:.1f} s")
        before = peak_rss_mb()
        settings = Settings(_env_file=None, data_dir=Path(directory) / "data")
        options = MigrationOptions(source=source, batch_size=args.batch_size)
        began = time.perf_counter()
        summary = await run_migration(settings, options)
        seconds = time.perf_counter() - began
        peak = peak_rss_mb()
        began = time.perf_counter()
        again = await run_migration(settings, options)
        again_seconds = time.perf_counter() - began
    rows = summary.videos.read + summary.chat_entries.read + summary.orphan_chat_rows.read
    print(summary.render())
    print(
        f"migrated {summary.videos.written} videos and {summary.chat_entries.written} chat entries in {seconds:.1f} s: "
        f"{rows / seconds:,.0f} rows/s ({summary.videos.read / seconds:,.0f} videos/s); "
        f"peak RSS {peak:.0f} MB ({before:.0f} MB before migrating)"
    )
    print(
        f"second run (reopens the store, every document already there, nothing changes): {again_seconds:.1f} s, "
        f"{'OK' if again.ok else 'FAILED'}; peak RSS {peak_rss_mb():.0f} MB"
    )


if __name__ == "__main__":
    asyncio.run(main())
