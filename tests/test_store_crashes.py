"""A real `video-analyzer serve` process on the embedded store: killed during writes, on a full disk,
on a damaged store. What it acknowledged is kept; what it refused is nowhere; damage stops it."""

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.db.durable import DATABASE_NAME
from tests.conftest import NO_AUDIO_VIDEO, SPEECH_VIDEO
from tests.server import ServerProcess, running_server
from tests.test_queue import wait_for

pytestmark = pytest.mark.embedded_only

FAST_WORKER = {"WORKERS": "1", "WORKER_POLL_SECONDS": "0.1"}


def upload_file(base_url: str, path: Path, name: str) -> httpx.Response:
    with path.open("rb") as file:
        return httpx.post(f"{base_url}/videos", files={"file": (name, file)}, timeout=30)


def completed_video(server: ServerProcess) -> str:
    video_id = upload_file(server.base_url, SPEECH_VIDEO, "talk.mp4").json()["id"]
    url = f"{server.base_url}/videos/{video_id}"
    wait_for(lambda: httpx.get(url, timeout=5).json()["status"] == "completed", timeout=90)
    return video_id


def chat_history(base_url: str, video_id: str) -> list[dict]:
    entries, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{base_url}/videos/{video_id}/chat", params=params, timeout=10).json()
        entries += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries


def test_every_acknowledged_write_survives_sigkill_during_writes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, FAST_WORKER)
    video_id = completed_video(server)
    acknowledged_chat: list[str] = []
    acknowledged_uploads: list[str] = []
    stop = threading.Event()

    def ask(number: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            for turn in range(10_000):
                if stop.is_set():
                    return
                try:
                    response = http.post(
                        f"/videos/{video_id}/chat", json={"question": f"Who is Clara? {number}-{turn}"}
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 201:
                    acknowledged_chat.append(response.json()["id"])

    def upload() -> None:
        while not stop.is_set():
            try:
                response = upload_file(server.base_url, NO_AUDIO_VIDEO, "quiet.mp4")
            except httpx.TransportError:
                return
            if response.status_code == 202:
                acknowledged_uploads.append(response.json()["id"])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(3)] + [threading.Thread(target=upload)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acknowledged_chat) >= 40 and len(acknowledged_uploads) >= 3, timeout=60)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    with running_server(data_dir) as restarted:
        chat = chat_history(restarted.base_url, video_id)
        assert set(acknowledged_chat) <= {entry["id"] for entry in chat}
        for uploaded in acknowledged_uploads:
            assert httpx.get(f"{restarted.base_url}/videos/{uploaded}", timeout=10).status_code == 200


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs as DATA_DIR: a disk that really fills up."""
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip(
            "a full disk needs a tmpfs mount, which needs root; the SQLITE_FULL test in test_store_durability covers the store"
        )
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the SQLITE_FULL test covers the store"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_disk(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def test_a_full_disk_answers_507_keeps_nothing_and_recovers(small_disk: Path) -> None:
    with running_server(small_disk, FAST_WORKER) as server:
        video_id = completed_video(server)
        url = f"{server.base_url}/videos/{video_id}"
        before = httpx.get(url, timeout=10).json()
        filler = fill_disk(small_disk)

        question = httpx.post(f"{url}/chat", json={"question": "What is the speaker's name?"}, timeout=10)
        renamed = httpx.patch(url, json={"filename": "renamed on a full disk.mp4"}, timeout=10)
        uploaded = upload_file(server.base_url, NO_AUDIO_VIDEO, "no room.mp4")
        for response in (question, renamed, uploaded):
            assert response.status_code == 507, response.text
            assert "full" in response.json()["detail"]
        assert httpx.get(url, timeout=10).json() == before
        assert len(httpx.get(f"{server.base_url}/videos", timeout=10).json()["items"]) == 1

        filler.unlink()
        answered = httpx.post(f"{url}/chat", json={"question": "Which city does Clara live in?"}, timeout=10)
        assert answered.status_code == 201

    with running_server(small_disk) as restarted:
        video = httpx.get(f"{restarted.base_url}/videos/{video_id}", timeout=10).json()
        assert video["filename"] == "talk.mp4"
        questions = [entry["question"] for entry in chat_history(restarted.base_url, video_id)]
        assert questions == ["Which city does Clara live in?"]
        assert len(httpx.get(f"{restarted.base_url}/videos", timeout=10).json()["items"]) == 1
        assert [path.name for path in (small_disk / "uploads" / ".incoming").iterdir()] == []


def test_a_store_another_program_has_locked_answers_503_and_keeps_nothing(tmp_path: Path) -> None:
    """Someone holds a write transaction on the file (the sqlite3 shell, say): writes fail cleanly."""
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        video_id = upload_file(server.base_url, NO_AUDIO_VIDEO, "quiet.mp4").json()["id"]
        url = f"{server.base_url}/videos/{video_id}"
        intruder = sqlite3.connect(data_dir / "db" / DATABASE_NAME, isolation_level=None)
        intruder.execute("BEGIN IMMEDIATE")
        renamed = httpx.patch(url, json={"filename": "while locked.mp4"}, timeout=10)
        assert httpx.get(url, timeout=10).json()["filename"] == "quiet.mp4"
        intruder.execute("ROLLBACK")
        intruder.close()
        assert renamed.status_code == 503, renamed.text
        assert "nothing of this write was kept" in renamed.json()["detail"]
        assert httpx.patch(url, json={"filename": "unlocked.mp4"}, timeout=10).status_code == 200
    with running_server(data_dir) as restarted:
        videos = httpx.get(f"{restarted.base_url}/videos", timeout=10).json()["items"]
        assert [video["filename"] for video in videos] == ["unlocked.mp4"]


def test_a_damaged_store_stops_the_start_with_what_to_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        video_id = upload_file(server.base_url, NO_AUDIO_VIDEO, "quiet.mp4").json()["id"]
    database = sqlite3.connect(data_dir / "db" / DATABASE_NAME)
    table = database.execute("SELECT table_name FROM collections WHERE collection = 'videos'").fetchone()[0]
    body = bytearray(database.execute(f"SELECT body FROM {table}").fetchone()[0])
    body[-10] ^= 0x20
    database.execute(f"UPDATE {table} SET body = ?", (bytes(body),))
    database.commit()
    database.close()

    with pytest.raises(RuntimeError, match="server exited early") as refused:
        ServerProcess(data_dir)
    log = str(refused.value)
    assert f"collection video_analyzer.videos: 1 damaged document(s): {video_id}" in log
    assert "video-analyzer check" in log


def test_a_second_process_on_a_store_in_use_is_told_so_without_a_traceback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir):
        env = {**os.environ, "DATA_DIR": str(data_dir)}
        create = ["create-user", "--username", "xavier", "--email", "x@example.com", "--password-stdin"]
        for command in (["serve", "--port", "1"], create):
            result = subprocess.run(
                [sys.executable, "-m", "service.cli", *command],
                env=env,
                input="a-password-long-enough\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode != 0
            assert "is in use by another process" in result.stderr
            assert "Traceback" not in result.stderr + result.stdout
