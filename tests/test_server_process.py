"""The real `video-analyzer serve` process keeps its data through a SIGKILL."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SPEECH_VIDEO, sha256_of
from tests.server import ServerProcess, running_server


@pytest.mark.embedded_only
def test_a_video_survives_sigkill_and_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir)
    assert "store: embedded" in server.log()
    with SPEECH_VIDEO.open("rb") as file:
        uploaded = httpx.post(f"{server.base_url}/videos", files={"file": ("talk.mp4", file)}, timeout=30)
    assert uploaded.status_code == 202
    video = uploaded.json()
    server.kill()

    with running_server(data_dir) as restarted:
        response = httpx.get(f"{restarted.base_url}/videos/{video['id']}", timeout=10)
        assert response.status_code == 200
        again = response.json()
        assert again["metadata"] == video["metadata"]
        assert again["file"] == video["file"]
        assert again["filename"] == "talk.mp4"
        assert "1 documents loaded" in restarted.log()
    stored = [path for path in (data_dir / "uploads").iterdir() if path.is_file()]
    assert [sha256_of(path) for path in stored] == [sha256_of(SPEECH_VIDEO)]


@pytest.mark.embedded_only
def test_the_log_says_which_store_and_where_first(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        first_lines = server.log().splitlines()[:3]
    assert any("store: embedded" in line and str((tmp_path / "data" / "db").resolve()) in line for line in first_lines)


def test_workers_alone_need_a_shared_mongodb(tmp_path: Path) -> None:
    """`video-analyzer worker` scales out against one MongoDB; the embedded store lives in one process."""
    command = [sys.executable, "-m", "service.cli", "worker"]
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "needs MONGODB_URL" in result.stderr
