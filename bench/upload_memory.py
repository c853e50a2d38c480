"""Peak memory of the server process while it receives uploads of growing size.

    python -m bench.upload_memory [--sizes-mb 100 1024]

Makes real media files of each size (lossless noise video, PyAV), starts `video-analyzer serve`
on the embedded store, streams each file to POST /videos, and prints the server's peak resident
memory (VmHWM) after each upload. Bounded memory means the peak does not grow with the size.
"""

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from tests.media import write_raw_video
from tests.server import running_server

BYTES_PER_FRAME = int(640 * 480 * 3.4)  # what FFV1 makes of one frame of noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1024])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        with running_server(root / "data", {"MAX_UPLOAD_MB": str(max(args.sizes_mb) * 2)}) as server:
            print(f"server idle: peak RSS {server.memory_mb()['VmHWM']:.0f} MB")
            for size_mb in args.sizes_mb:
                media = write_raw_video(
                    root / f"{size_mb}.mkv", frames=size_mb * 1024 * 1024 // BYTES_PER_FRAME, width=640, height=480
                )
                began = time.perf_counter()
                with media.open("rb") as file:
                    response = httpx.post(f"{server.base_url}/videos", files={"file": (media.name, file)}, timeout=600)
                seconds = time.perf_counter() - began
                assert response.status_code == 202, response.text
                size = media.stat().st_size
                print(
                    f"upload of {size / 1024**2:7.0f} MB: {seconds:6.1f} s ({size / 1024**2 / seconds:5.0f} MB/s), "
                    f"server peak RSS {server.memory_mb()['VmHWM']:.0f} MB"
                )
                media.unlink()


if __name__ == "__main__":
    main()
