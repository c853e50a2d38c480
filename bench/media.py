"""Media for players through a real server: seeking, whole-file reads, thumbnails.

    python -m bench.media [--size-mb 200] [--seeks 200]

Makes a lossless noise video of about `--size-mb` (PyAV), starts `video-analyzer serve` on the
embedded store, uploads it, then over HTTP/1.1 keep-alive, as a player does:

- seeks: `--seeks` requests for a random 1 MiB range (`Range: bytes=START-END`), p50 and p95 time
  to the whole range;
- the time to the first byte of an open range (`bytes=START-`, what a browser asks for after a
  seek), read no further, the connection closed;
- the whole file read in one request, in MB/s;
- the first thumbnail (decoded and kept) and the next one (read back from storage);
- the server's peak resident memory (VmHWM) over all of it, against what it was before.
"""

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.media import write_raw_video
from tests.server import running_server

BYTES_PER_FRAME = int(640 * 480 * 3.4)  # what FFV1 makes of one frame of noise
SEEK_BYTES = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--seeks", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        media = write_raw_video(
            root / "bench.mkv", frames=args.size_mb * 1024 * 1024 // BYTES_PER_FRAME, width=640, height=480
        )
        size = media.stat().st_size
        with running_server(root / "data", {"MAX_UPLOAD_MB": str(args.size_mb * 2)}) as server:
            with media.open("rb") as file, httpx.Client(base_url=server.base_url, timeout=600) as http:
                video_id = http.post("/videos", files={"file": (media.name, file)}).json()["id"]
                server.reset_peak_memory()
                before = server.memory_mb()["VmRSS"]
                url = f"/videos/{video_id}/media"
                print(f"file: {size / 1024**2:.0f} MB; server before reading it: {before:.0f} MB resident")
                _seeks(http, url, size, args.seeks, rng)
                _first_bytes(http, url, size, rng)
                _whole(http, url, size)
                _thumbnails(http, video_id)
            print(f"server peak RSS while serving: {server.memory_mb()['VmHWM']:.0f} MB")


def _seeks(http: httpx.Client, url: str, size: int, count: int, rng: random.Random) -> None:
    timings = []
    for _ in range(count):
        start = rng.randrange(0, size - SEEK_BYTES)
        began = time.perf_counter()
        response = http.get(url, headers={"Range": f"bytes={start}-{start + SEEK_BYTES - 1}"})
        timings.append(time.perf_counter() - began)
        assert response.status_code == 206 and len(response.content) == SEEK_BYTES
    print(f"{count} ranges of 1 MiB: {_percentiles(timings)}")


def _first_bytes(http: httpx.Client, url: str, size: int, rng: random.Random) -> None:
    timings = []
    for _ in range(50):
        began = time.perf_counter()
        with http.stream("GET", url, headers={"Range": f"bytes={rng.randrange(0, size)}-"}) as response:
            next(response.iter_raw())
            timings.append(time.perf_counter() - began)
    print(f"50 open ranges, first byte: {_percentiles(timings)}")


def _whole(http: httpx.Client, url: str, size: int) -> None:
    began = time.perf_counter()
    with http.stream("GET", url) as response:
        received = sum(len(chunk) for chunk in response.iter_raw())
    seconds = time.perf_counter() - began
    assert received == size
    print(f"whole file: {seconds:.2f} s, {size / 1024**2 / seconds:.0f} MB/s")


def _thumbnails(http: httpx.Client, video_id: str) -> None:
    for which in ("first (made)", "second (kept)"):
        began = time.perf_counter()
        response = http.get(f"/videos/{video_id}/thumbnail")
        assert response.status_code == 200
        print(f"thumbnail, {which}: {(time.perf_counter() - began) * 1000:.1f} ms, {len(response.content)} bytes")


def _percentiles(seconds: list[float]) -> str:
    cuts = statistics.quantiles(seconds, n=100)
    return f"p50 {cuts[49] * 1000:.1f} ms, p95 {cuts[94] * 1000:.1f} ms"


if __name__ == "__main__":
    main()
