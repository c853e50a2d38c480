"""Transcription through the whole pipeline against faster-whisper called directly.

    python -m bench.transcribe                      # a 10-minute file made from the speech fixture
    python -m bench.transcribe --loop-minutes 3 --batch-sizes 4,8,16

The file repeats the speech fixture, so its script is the fixture's script repeated. The pipeline
run starts `video-analyzer serve` (embedded store, one worker, the default settings), warms its
model on the short fixture, then times upload-to-completed while another thread calls GET /health
every 50 ms. The direct runs load the same model and time faster-whisper on the file: sequentially
(beam 5, no VAD: the model alone) and batched (its BatchedInferencePipeline, VAD on) at each batch
size. Prints each time, real-time factor and word error rate against the script, the pipeline's
ratio to the sequential run, /health p99, and the load average (other work on the machine).
"""

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import av
import httpx
import jiwer
from faster_whisper import BatchedInferencePipeline, WhisperModel

from service.config import Settings
from service.processing.transcription import Transcriber
from tests.conftest import SPEECH_SCRIPT, SPEECH_VIDEO
from tests.media import loop_media
from tests.server import running_server


def media_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / av.time_base


def upload_and_wait(base_url: str, path: Path) -> tuple[float, str]:
    """Seconds from the upload's start until the video is completed, and its transcript's text."""
    began = time.perf_counter()
    with path.open("rb") as file:
        response = httpx.post(f"{base_url}/videos", files={"file": (path.name, file)}, timeout=600)
    response.raise_for_status()
    url = f"{base_url}/videos/{response.json()['id']}"
    while (status := httpx.get(url, timeout=30).json()["status"]) not in ("completed", "failed"):
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    video = httpx.get(url, timeout=30).json()
    if status != "completed":
        raise RuntimeError(f"the pipeline did not complete: {video['job']}")
    return seconds, video["transcript"]["text"]


def health_latencies(base_url: str, stop: threading.Event) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            began = time.perf_counter()
            client.get(f"{base_url}/health").raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)
            stop.wait(0.05)
    return latencies


def pipeline_run(path: Path) -> tuple[float, str, list[float]]:
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(Path(directory) / "data", {"WORKERS": "1", "WORKER_POLL_SECONDS": "0.05"}) as server,
    ):
        upload_and_wait(server.base_url, SPEECH_VIDEO)
        stop = threading.Event()
        latencies: list[float] = []
        poller = threading.Thread(target=lambda: latencies.extend(health_latencies(server.base_url, stop)))
        poller.start()
        seconds, text = upload_and_wait(server.base_url, path)
        stop.set()
        poller.join()
        return seconds, text, latencies


def direct_run(path: Path, batch_size: int) -> tuple[float, str]:
    """faster-whisper called directly on the file (decoding included): sequentially with beam 5 and
    no VAD as the model alone would be, or, with `batch_size`, its batched pipeline (VAD on)."""
    settings = Settings(_env_file=None)
    model: WhisperModel = Transcriber(settings).model()
    began = time.perf_counter()
    arguments = {"beam_size": settings.whisper_beam_size, "language": "en"}
    if batch_size:
        segments, _ = BatchedInferencePipeline(model).transcribe(str(path), batch_size=batch_size, **arguments)
    else:
        segments, _ = model.transcribe(str(path), vad_filter=False, **arguments)
    text = " ".join(segment.text.strip() for segment in segments)
    return time.perf_counter() - began, text


def word_error_rate(script: str, text: str) -> float:
    def normalized(words: str) -> str:
        return " ".join(re.sub(r"[^a-z' ]+", " ", words.lower()).split())

    return jiwer.wer(normalized(script), normalized(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop-minutes", type=float, default=10, help="how long a file to make from the fixture")
    parser.add_argument("--batch-sizes", default="8", help="batch sizes of the batched runs, comma-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = loop_media(SPEECH_VIDEO, Path(directory) / "long.mkv", args.loop_minutes)
        length = media_seconds(path)
        script = " ".join([SPEECH_SCRIPT.read_text()] * round(length / media_seconds(SPEECH_VIDEO)))
        pipeline, pipeline_text, latencies = pipeline_run(path)
        runs = {"faster-whisper sequential": direct_run(path, 0)}
        for size in (int(size) for size in args.batch_sizes.split(",")):
            runs[f"faster-whisper batched {size}"] = direct_run(path, size)
    print(f"media: {length:.1f} s (the speech fixture repeated); load average {os.getloadavg()[0]:.2f} at the end")
    rows = {"pipeline (upload to completed)": (pipeline, pipeline_text), **runs}
    for name, (seconds, text) in rows.items():
        print(
            f"{name:32} {seconds:7.2f} s  real-time factor {seconds / length:.4f}  "
            f"WER {word_error_rate(script, text) * 100:.2f} %"
        )
    direct = runs["faster-whisper sequential"][0]
    print(f"pipeline / direct sequential: {pipeline / direct:.3f} (target <= 0.6)")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"GET /health during the pipeline: {len(latencies)} calls, "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms (target < 100 ms)"
    )


if __name__ == "__main__":
    main()
