"""Transcription through the whole pipeline against faster-whisper called directly.

    python -m bench.transcribe FILE
    python -m bench.transcribe --loop-minutes 10     # makes a 10-minute file from the speech fixture

The pipeline run starts `video-analyzer serve` (embedded store, one worker), warms its model on
the short fixture, then times upload-to-completed for FILE while another thread calls
GET /health every 50 ms. The direct run loads the same model with the same settings and times
one transcription of FILE. Prints both times, real-time factors, their ratio and /health p99.
"""

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import av
import httpx
from faster_whisper import WhisperModel

from service.config import Settings
from service.processing.transcription import Transcriber
from tests.conftest import SPEECH_VIDEO
from tests.media import loop_media
from tests.server import running_server


def media_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / av.time_base


def upload_and_wait(base_url: str, path: Path) -> float:
    began = time.perf_counter()
    with path.open("rb") as file:
        response = httpx.post(f"{base_url}/videos", files={"file": (path.name, file)}, timeout=600)
    response.raise_for_status()
    url = f"{base_url}/videos/{response.json()['id']}"
    while (status := httpx.get(url, timeout=30).json()["status"]) not in ("completed", "failed"):
        time.sleep(0.05)
    if status != "completed":
        raise RuntimeError(f"the pipeline did not complete: {httpx.get(url).json()['job']}")
    return time.perf_counter() - began


def health_latencies(base_url: str, stop: threading.Event) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            began = time.perf_counter()
            client.get(f"{base_url}/health").raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)
            stop.wait(0.05)
    return latencies


def pipeline_seconds(path: Path) -> tuple[float, list[float]]:
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(Path(directory) / "data", {"WORKERS": "1", "WORKER_POLL_SECONDS": "0.05"}) as server,
    ):
        upload_and_wait(server.base_url, SPEECH_VIDEO)
        stop = threading.Event()
        latencies: list[float] = []
        poller = threading.Thread(target=lambda: latencies.extend(health_latencies(server.base_url, stop)))
        poller.start()
        seconds = upload_and_wait(server.base_url, path)
        stop.set()
        poller.join()
        return seconds, latencies


def direct_seconds(path: Path) -> float:
    settings = Settings(_env_file=None)
    transcriber = Transcriber(settings)
    model: WhisperModel = transcriber.model()
    began = time.perf_counter()
    segments, _ = model.transcribe(
        str(path),
        beam_size=settings.whisper_beam_size,
        vad_filter=settings.whisper_vad_filter,
        word_timestamps=settings.whisper_word_timestamps,
    )
    for _ in segments:
        pass
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--loop-minutes", type=float, help="make FILE by repeating the speech fixture this long")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = args.file or loop_media(SPEECH_VIDEO, Path(directory) / "long.mkv", args.loop_minutes or 10)
        length = media_seconds(path)
        pipeline, latencies = pipeline_seconds(path)
        direct = direct_seconds(path)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"media: {path.name}, {length:.1f} s")
    print(f"pipeline (upload to completed): {pipeline:.2f} s, real-time factor {pipeline / length:.4f}")
    print(f"faster-whisper directly:        {direct:.2f} s, real-time factor {direct / length:.4f}")
    print(f"pipeline / direct: {pipeline / direct:.3f} (target <= 1.10)")
    print(
        f"GET /health during the pipeline: {len(latencies)} calls, p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms (target < 100 ms)"
    )


if __name__ == "__main__":
    main()
