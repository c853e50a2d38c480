"""How fast `video-analyzer export` and `import` move an embedded store, and how much memory they take.

    python -m bench.export_import [--videos 10000] [--chat 50000] [--files 1000] [--file-bytes 4096]

Builds an embedded store through the Motor API (videos with transcripts of timed segments, chat
entries spread unevenly over them, a small dummy file for the first --files videos and none for
the rest), then runs the real commands, each as a process of its own: `export`, `import` into an
empty DATA_DIR, `import` again (nothing changes), and `check` of the imported store. For each it
prints the seconds and that process's peak resident memory (ru_maxrss from wait4).
"""

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bson import ObjectId

from bench.synthetic import question, sentence, transcript
from service.config import Settings
from service.db.service import connect
from service.storage.local import LocalStorage
from service.videos.models import ChatEntry, Citation, FileInfo, Video

BATCH = 1000


def _chat_counts(videos: int, chat: int, rng: random.Random) -> list[int]:
    counts = [0] * videos
    for _ in range(chat):
        counts[min(videos - 1, int(rng.expovariate(3 / videos)))] += 1  # earlier videos have more chat
    return counts


def _video(index: int, chat: int, file: FileInfo | None, rng: random.Random) -> dict:
    spoken = transcript(rng, segments=rng.randint(10, 30))
    entries = [
        ChatEntry(
            id=f"{index}-{n}",
            question=question(rng),
            answer=" ".join(sentence(rng) for _ in range(rng.randint(2, 6))),
            citations=[Citation(start=s.start, end=s.end, text=s.text) for s in spoken.segments[:2]],
            model="local",
            language="en",
        )
        for n in range(chat)
    ]
    video = Video(filename=f"meeting-{index:05d}.mp4", file=file, status="completed", transcript=spoken, chat=entries)
    return {"_id": ObjectId(), **video.model_dump(by_alias=True, exclude={"id", "revision_id"})}


async def _file(storage: LocalStorage, index: int, size: int) -> FileInfo:
    data = hashlib.sha256(str(index).encode()).digest() * (size // 32 + 1)
    stored = await storage.put(f"bench{index}", data[:size])
    return FileInfo(key=f"bench{index}", size=stored.size, sha256=stored.sha256, content_type="video/mp4")


async def build(data_dir: Path, videos: int, chat: int, files: int, file_bytes: int) -> None:
    rng = random.Random(7)
    counts = _chat_counts(videos, chat, rng)
    settings = Settings(_env_file=None, data_dir=data_dir)
    storage = LocalStorage(settings.files_dir)
    database = await connect(settings)
    collection = Video.get_motor_collection()
    for start in range(0, videos, BATCH):
        batch = []
        for index in range(start, min(start + BATCH, videos)):
            file = await _file(storage, index, file_bytes) if index < files else None
            batch.append(_video(index, counts[index], file, rng))
        await collection.insert_many(batch)
    database.close()


def build_in_a_child(data_dir: Path, videos: int, chat: int, files: int, file_bytes: int) -> None:
    """Build in a process of its own: the commands are started from this one, and a child forked
    from a process holding the whole store in memory would count those pages as its own."""
    child = multiprocessing.get_context("spawn").Process(
        target=_build, args=(data_dir, videos, chat, files, file_bytes)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"building the store failed (exit {child.exitcode})")


def _build(data_dir: Path, videos: int, chat: int, files: int, file_bytes: int) -> None:
    asyncio.run(build(data_dir, videos, chat, files, file_bytes))


def run(data_dir: Path, *args: str) -> tuple[float, float, str]:
    """Seconds, peak RSS in MB, and the output of `video-analyzer ARGS` run as its own process."""
    env = {name: value for name, value in os.environ.items() if name != "MONGODB_URL"}
    env["DATA_DIR"] = str(data_dir)
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"video-analyzer {' '.join(args)} exited {process.returncode}:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--chat", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=1_000, help="videos with a stored file (the rest have none)")
    parser.add_argument("--file-bytes", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        source, target, archive = Path(directory) / "source", Path(directory) / "target", Path(directory) / "backup.tar"
        began = time.perf_counter()
        build_in_a_child(source, args.videos, args.chat, min(args.files, args.videos), args.file_bytes)
        store_mb = (source / "db" / "store.sqlite3").stat().st_size / 1e6
        print(
            f"built {args.videos} videos, {args.chat} chat entries, {args.files} files of {args.file_bytes} bytes: "
            f"{store_mb:.1f} MB store, in {time.perf_counter() - began:.1f} s"
        )
        for label, data_dir, command in (
            ("export", source, ("export", str(archive))),
            ("import into an empty DATA_DIR", target, ("import", str(archive))),
            ("import again (nothing changes)", target, ("import", str(archive))),
            ("check of the imported store", target, ("check",)),
        ):
            seconds, peak, output = run(data_dir, *command)
            size = f"; archive {archive.stat().st_size / 1e6:.1f} MB" if command[0] == "export" else ""
            print(f"{label}: {seconds:.1f} s, peak RSS {peak:.0f} MB{size}")
            if command[0] == "import":
                print("  " + "\n  ".join(line for line in output.splitlines()[-5:] if not line.startswith("20")))


if __name__ == "__main__":
    main()
