"""The service as a real process on a free loopback port, and the peers tests run beside it."""

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def silent_peer() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@contextmanager
def app_on_loopback(app: ASGIApp, port: int, name: str, log_level: str = "warning") -> Iterator[None]:
    """A peer of the service (`app`) served by uvicorn on 127.0.0.1:`port`, from a thread of its own.
    At the end, a request still in hand (a peer scripted to hang) is given a second, not waited for."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        ca: Path | None = None,
        port: int | None = None,
    ) -> None:
        """`args` are added to `video-analyzer serve`; with `ca`, the certificate the server presents,
        it is reached over HTTPS, trusting that certificate alone (`verify` for httpx). `port`: a
        free one unless given (a restart on the port of a server that stopped)."""
        self.port = port or free_port()
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self.base_url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        environment = {**os.environ, "DATA_DIR": str(data_dir), "WORKERS": "0", **(env or {})}
        command = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), *args]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_until_healthy()

    def _wait_until_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0, verify=self.verify).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def memory_mb(self) -> dict[str, float]:
        """The process's resident memory now (`VmRSS`) and at its peak so far (`VmHWM`), in MB."""
        lines = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if line.startswith(("VmRSS:", "VmHWM:")))
        return {name: int(value.split()[0]) / 1024 for name, value in fields.items()}

    def reset_peak_memory(self) -> None:
        """Bring the peak (`VmHWM`) down to the memory in use now, so that the next peak measures
        what comes next rather than start-up (Linux 4.0+)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def running_server(
    data_dir: Path, env: dict[str, str] | None = None, args: Sequence[str] = (), ca: Path | None = None
) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir, env, args, ca)
    try:
        yield server
    finally:
        server.stop()
