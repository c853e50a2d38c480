"""Local storage against GridFS (on the embedded store) for one large file, through a real server.

    python -m bench.storage [--size-mb 1024] [--seeks 50]

Makes a lossless noise video of about `--size-mb` (PyAV), then for STORAGE=local and
STORAGE=gridfs in turn starts `video-analyzer serve` on an empty embedded store and prints:

- the upload (POST /videos, streamed from the file) in MB/s, and the server's peak resident memory
  (VmHWM) during it against what it was before;
- the whole file read back (GET /videos/{id}/media, streamed) in MB/s, and the peak memory then;
- `--seeks` random 1 MiB ranges: p50 and p95 time to the whole range;
- the start of a fresh server over that store (the embedded store verifies every chunk when it
  opens), and its resident memory once started.
"""

import argparse
import hashlib
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.media import BYTES_PER_FRAME, SEEK_BYTES
from tests.media import write_raw_video
from tests.server import ServerProcess, running_server

MB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--seeks", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        media = write_raw_video(root / "bench.mkv", frames=args.size_mb * MB // BYTES_PER_FRAME, width=640, height=480)
        size = media.stat().st_size
        print(f"file: {size / MB:.0f} MB")
        for storage in ("local", "gridfs"):
            env = {"STORAGE": storage, "MAX_UPLOAD_MB": str(args.size_mb * 2)}
            data = root / storage
            with running_server(data, env) as server:
                video_id = _upload(server, media, storage)
                _download(server, video_id, size, media)
                _seeks(server, video_id, size, args.seeks)
            began = time.perf_counter()
            with running_server(data, env) as restarted:
                started = time.perf_counter() - began
                print(
                    f"  {storage}: a fresh server over that store answers in {started:.1f} s, {_rss(restarted):.0f} MB resident"
                )


def _rss(server: ServerProcess) -> float:
    return server.memory_mb()["VmRSS"]


def _upload(server: ServerProcess, media: Path, storage: str) -> str:
    before = _rss(server)
    server.reset_peak_memory()
    began = time.perf_counter()
    with media.open("rb") as file:
        response = httpx.post(f"{server.base_url}/videos", files={"file": (media.name, file)}, timeout=3600)
    seconds = time.perf_counter() - began
    assert response.status_code == 202, response.text
    rate = media.stat().st_size / MB / seconds
    peak = server.memory_mb()["VmHWM"]
    print(
        f"{storage}: upload {seconds:.1f} s ({rate:.0f} MB/s), server peak RSS {peak:.0f} MB ({before:.0f} MB before)"
    )
    return response.json()["id"]


def _download(server: ServerProcess, video_id: str, size: int, media: Path) -> None:
    before = _rss(server)
    server.reset_peak_memory()
    sha256 = hashlib.sha256()
    began = time.perf_counter()
    with httpx.stream("GET", f"{server.base_url}/videos/{video_id}/media", timeout=3600) as response:
        for piece in response.iter_bytes():
            sha256.update(piece)
    seconds = time.perf_counter() - began
    with media.open("rb") as file:
        assert sha256.hexdigest() == hashlib.file_digest(file, "sha256").hexdigest(), "the file came back changed"
    peak = server.memory_mb()["VmHWM"]
    print(
        f"  download {seconds:.1f} s ({size / MB / seconds:.0f} MB/s), server peak RSS {peak:.0f} MB ({before:.0f} before)"
    )


def _seeks(server: ServerProcess, video_id: str, size: int, count: int) -> None:
    rng = random.Random(5)
    timings = []
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        for _ in range(count):
            start = rng.randrange(0, size - SEEK_BYTES)
            began = time.perf_counter()
            response = http.get(
                f"/videos/{video_id}/media", headers={"Range": f"bytes={start}-{start + SEEK_BYTES - 1}"}
            )
            timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 206 and len(response.content) == SEEK_BYTES
    p95 = statistics.quantiles(timings, n=20)[-1]
    print(f"  {count} random 1 MiB ranges: p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
