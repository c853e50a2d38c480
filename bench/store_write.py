"""How long a chat-sized write takes on the embedded store, with 100 and with 10,000 videos.

    python -m bench.store_write [--videos 10000] [--writes 300]

Each write is what the chat service does: one `$push` of a question, answer and citations into
one video's document, committed in one SQLite transaction (WAL, synchronous=FULL) before it returns.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bson import ObjectId

from service.clock import utc_now
from service.config import Settings
from service.db.service import connect
from service.videos.models import ChatEntry, Citation, FileInfo, Segment, Transcript, Video

WORDS = "the launch of the new phone was moved to march because the factory in lisbon flooded".split()


def synthetic_video(index: int) -> dict:
    segments = [
        Segment(start=s * 5.0, end=s * 5.0 + 5.0, text=" ".join(WORDS[(s + i) % len(WORDS)] for i in range(12)))
        for s in range(60)
    ]
    transcript = Transcript(language="en", text=" ".join(seg.text for seg in segments), segments=segments)
    video = Video(
        filename=f"video-{index}.mp4", file=FileInfo(key=f"k{index}", size=1, sha256="0"), transcript=transcript
    )
    document = video.model_dump(by_alias=True, exclude={"id", "revision_id"})
    document["_id"] = ObjectId()
    return document


def chat_entry(n: int) -> dict:
    return ChatEntry(
        id=str(n),
        question="When does the new phone launch and why was it moved?",
        answer="It launches in March; the factory in Lisbon flooded. " * 4,
        citations=[Citation(start=10.0 * i, end=10.0 * i + 5, text=" ".join(WORDS)) for i in range(3)],
        model="local",
        language="en",
        created_at=utc_now(),
    ).model_dump()


async def measure(video_count: int, writes: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as directory:
        database = await connect(Settings(_env_file=None, data_dir=Path(directory)))
        collection = Video.get_motor_collection()
        for start in range(0, video_count, 1000):
            await collection.insert_many([synthetic_video(i) for i in range(start, min(start + 1000, video_count))])
        ids = [doc["_id"] for doc in await collection.find({}, {"_id": 1}).to_list(None)]
        timings = []
        for n in range(writes):
            began = time.perf_counter()
            await collection.update_one({"_id": ids[n * 7919 % len(ids)]}, {"$push": {"chat": chat_entry(n)}})
            timings.append((time.perf_counter() - began) * 1000)
        database.close()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], len(ids)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    for count in (100, args.videos):
        p50, p95, stored = await measure(count, args.writes)
        print(
            f"chat $push on a store of {stored:>6} videos: p50 {p50:.2f} ms, p95 {p95:.2f} ms over {args.writes} writes"
        )


if __name__ == "__main__":
    asyncio.run(main())
