"""Transcription through the whole pipeline against faster-whisper called directly.

    python -m bench.transcribe                      # a 10-minute file made from the speech fixture
    python -m bench.transcribe --loop-minutes 3 --batch-sizes 4,8,16
    python -m bench.transcribe --direct-threads 2  # the direct runs on two threads, not four

The file repeats the speech fixture, so its script is the fixture's script repeated. The pipeline
run starts `video-analyzer serve` (embedded store, one worker, the default settings), warms its
model on the short fixture, then times upload-to-completed while another thread calls GET /health
every 50 ms, and splits that time by the job's own timestamps. The direct runs load the same model
as faster-whisper loads it by default (int8, its own thread count) and time it on the file:
sequentially (beam 5, no VAD: the model alone) and batched (its BatchedInferencePipeline, VAD on)
at each batch size. Prints each time with its CPU time (the server process's for the pipeline: the
figure other programs on a shared machine do not inflate) and the load average around it,
real-time factor and word error rate against the script, the pipeline's ratio to the sequential
run in both, and /health p50 and p99.
"""

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
import httpx
import jiwer
from faster_whisper import BatchedInferencePipeline, WhisperModel

from service.config import Settings
from service.processing.transcription import model_location
from tests.conftest import SPEECH_SCRIPT, SPEECH_VIDEO, normalized_words
from tests.media import loop_media
from tests.server import running_server

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    text: str
    load: tuple[float, float]
    """The load average (1 minute) when the run started and when it ended."""


def process_cpu_seconds(pid: int) -> float:
    """User and system time of another process, every thread, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def media_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        return container.duration / av.time_base


def upload_and_wait(base_url: str, path: Path) -> tuple[float, dict]:
    """Seconds from the upload's start until the video is seen completed, and the video; its
    `accepted_after` is the seconds until the upload was answered."""
    began = time.perf_counter()
    with path.open("rb") as file:
        response = httpx.post(f"{base_url}/videos", files={"file": (path.name, file)}, timeout=600)
    response.raise_for_status()
    accepted_after = time.perf_counter() - began
    url = f"{base_url}/videos/{response.json()['id']}"
    while (status := httpx.get(url, timeout=30).json()["status"]) not in ("completed", "failed"):
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    video = httpx.get(url, timeout=30).json()
    if status != "completed":
        raise RuntimeError(f"the pipeline did not complete: {video['job']}")
    return seconds, {**video, "accepted_after": accepted_after}


def stages(video: dict) -> str:
    """The pipeline's time split by the job's timestamps: uploaded, waiting, processing."""
    job = video["job"]
    queued, started, finished = (datetime.fromisoformat(job[key]) for key in ("queued_at", "started_at", "finished_at"))
    return (
        f"upload answered after {video['accepted_after']:.2f} s, waited {(started - queued).total_seconds():.2f} s "
        f"for a worker, processed (decode, transcription, summary, store) in {(finished - started).total_seconds():.2f} s"
    )


def health_latencies(base_url: str, stop: threading.Event) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            began = time.perf_counter()
            client.get(f"{base_url}/health").raise_for_status()
            latencies.append((time.perf_counter() - began) * 1000)
            stop.wait(0.05)
    return latencies


def pipeline_run(path: Path) -> tuple[Run, str, list[float]]:
    """The pipeline's run, its stages, and the GET /health latencies during it."""
    with (
        tempfile.TemporaryDirectory() as directory,
        running_server(Path(directory) / "data", {"WORKERS": "1", "WORKER_POLL_SECONDS": "0.05"}) as server,
    ):
        upload_and_wait(server.base_url, SPEECH_VIDEO)
        stop = threading.Event()
        latencies: list[float] = []
        poller = threading.Thread(target=lambda: latencies.extend(health_latencies(server.base_url, stop)))
        poller.start()
        load, cpu = os.getloadavg()[0], process_cpu_seconds(server.process.pid)
        seconds, video = upload_and_wait(server.base_url, path)
        cpu = process_cpu_seconds(server.process.pid) - cpu
        stop.set()
        poller.join()
        run = Run(seconds, cpu, video["transcript"]["text"], (load, os.getloadavg()[0]))
        return run, stages(video), latencies


def direct_run(path: Path, batch_size: int, cpu_threads: int) -> Run:
    """faster-whisper called directly on the file (decoding included), its model loaded with int8
    and `cpu_threads` (0: faster-whisper's default, 4): sequentially with beam 5 and no VAD as the
    model alone would be, or, with `batch_size`, its batched pipeline (VAD on)."""
    settings = Settings(_env_file=None)
    model = WhisperModel(
        model_location(settings.whisper_model), device="cpu", compute_type="int8", cpu_threads=cpu_threads
    )
    load, cpu, began = os.getloadavg()[0], time.process_time(), time.perf_counter()
    arguments = {"beam_size": settings.whisper_beam_size, "language": "en"}
    if batch_size:
        segments, _ = BatchedInferencePipeline(model).transcribe(str(path), batch_size=batch_size, **arguments)
    else:
        segments, _ = model.transcribe(str(path), vad_filter=False, **arguments)
    text = " ".join(segment.text.strip() for segment in segments)
    return Run(time.perf_counter() - began, time.process_time() - cpu, text, (load, os.getloadavg()[0]))


def word_error_rate(script: str, text: str) -> float:
    return jiwer.wer(normalized_words(script), normalized_words(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop-minutes", type=float, default=10, help="how long a file to make from the fixture")
    parser.add_argument("--batch-sizes", default="8", help="batch sizes of the batched runs, comma-separated")
    parser.add_argument(
        "--direct-threads", type=int, default=0, help="CPU threads of the direct runs (0: faster-whisper's default)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = loop_media(SPEECH_VIDEO, Path(directory) / "long.mkv", args.loop_minutes)
        length = media_seconds(path)
        script = " ".join([SPEECH_SCRIPT.read_text()] * round(length / media_seconds(SPEECH_VIDEO)))
        pipeline, pipeline_stages, latencies = pipeline_run(path)
        runs = {"faster-whisper sequential": direct_run(path, 0, args.direct_threads)}
        for size in (int(size) for size in args.batch_sizes.split(",")):
            runs[f"faster-whisper batched {size}"] = direct_run(path, size, args.direct_threads)
    print(f"media: {length:.1f} s (the speech fixture repeated) on {os.cpu_count()} CPUs")
    for name, run in {"pipeline (upload to completed)": pipeline, **runs}.items():
        print(
            f"{name:32} {run.seconds:7.2f} s (CPU {run.cpu_seconds:6.2f} s, load {run.load[0]:.1f}-{run.load[1]:.1f})"
            f"  real-time factor {run.seconds / length:.4f}  WER {word_error_rate(script, run.text) * 100:.2f} %"
        )
    print(f"pipeline: {pipeline_stages}")
    direct = runs["faster-whisper sequential"]
    print(
        f"pipeline / direct sequential: {pipeline.seconds / direct.seconds:.3f} (target <= 0.6), "
        f"in CPU time {pipeline.cpu_seconds / direct.cpu_seconds:.3f}"
    )
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"GET /health during the pipeline: {len(latencies)} calls, "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms (target < 100 ms)"
    )


if __name__ == "__main__":
    main()
