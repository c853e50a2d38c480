"""How long the embedded store takes to open, and how much memory it holds, with 10,000 videos.

    python -m bench.store_startup [--videos 10000] [--chat 50000]

Builds a store of videos with transcripts (60 timed segments of generated sentences each) and
chat entries spread over them, closes it, then opens it in a fresh process as `serve` does
(`connect`: the WAL check, SQLite's integrity check, every row's checksum and BSON, the load
into memory, and every index of the design) and prints the seconds that took and the process's
peak resident memory (VmHWM), before and after.
"""

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bson import ObjectId

from bench.synthetic import question, transcript
from service.clock import utc_now
from service.config import Settings
from service.db.durable import DATABASE_NAME
from service.db.service import connect
from service.videos.models import ChatEntry, Citation, FileInfo, Video


def _video(rng: random.Random, index: int, chats: int) -> dict:
    spoken = transcript(rng, segments=60)
    chat = [
        ChatEntry(
            id=f"{index}-{n}",
            question=question(rng),
            answer=spoken.segments[n].text,
            citations=[
                Citation(start=spoken.segments[n].start, end=spoken.segments[n].end, text=spoken.segments[n].text)
            ],
            model="local",
        )
        for n in range(chats)
    ]
    video = Video(
        filename=f"video-{index}.mp4",
        file=FileInfo(key=f"{index:032x}", size=1, sha256="0" * 64),
        status="completed",
        transcript=spoken,
        chat=chat,
        processed_at=utc_now(),
    )
    document = video.model_dump(by_alias=True, exclude={"id", "revision_id"})
    document["_id"] = ObjectId()
    return document


async def build(data_dir: Path, videos: int, chat: int) -> None:
    rng = random.Random(7)
    database = await connect(Settings(_env_file=None, data_dir=data_dir))
    collection = Video.get_motor_collection()
    per_video, extra = divmod(chat, videos)
    for start in range(0, videos, 500):
        batch = range(start, min(start + 500, videos))
        await collection.insert_many([_video(rng, i, per_video + (i < extra)) for i in batch])
    database.close()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


async def open_once(data_dir: Path) -> None:
    before = peak_rss_mb()
    began = time.perf_counter()
    database = await connect(Settings(_env_file=None, data_dir=data_dir))
    seconds = time.perf_counter() - began
    count = await Video.get_motor_collection().count_documents({})
    peak = peak_rss_mb()
    database.close()
    print(f"opened {count} videos in {seconds:.2f} s; peak RSS {peak:.0f} MB ({before:.0f} MB before opening)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--chat", type=int, default=50_000)
    parser.add_argument("--open", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.open:
        asyncio.run(open_once(args.open))
        return
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory)
        began = time.perf_counter()
        asyncio.run(build(data_dir, args.videos, args.chat))
        size = (data_dir / "db" / DATABASE_NAME).stat().st_size / 1024 / 1024
        print(
            f"built {args.videos} videos, {args.chat} chat entries in {time.perf_counter() - began:.1f} s ({size:.0f} MB file)"
        )
        subprocess.run([sys.executable, "-m", "bench.store_startup", "--open", str(data_dir)], check=True)


if __name__ == "__main__":
    main()
