from datetime import timedelta

import httpx

from service.clock import utc_now
from service.videos.models import ChatEntry, FileInfo, Job, Video
from tests.conftest import SPEECH_VIDEO, upload


async def test_stats_counts_with_aggregation(client: httpx.AsyncClient) -> None:
    await upload(client, SPEECH_VIDEO)
    now = utc_now()
    for seconds, days_ago in ((4.0, 0), (8.0, 3)):
        await Video(
            filename="done.mp4",
            file=FileInfo(key="k", size=1, sha256="0"),
            status="completed",
            job=Job(started_at=now - timedelta(seconds=seconds), finished_at=now),
            chat=[ChatEntry(id=str(i), question="q", answer="a") for i in range(3)],
            uploaded_at=now - timedelta(days=days_ago),
        ).insert()
    response = await client.get("/stats")
    assert response.status_code == 200
    assert response.json() == {
        "total_videos": 3,
        "videos_today": 2,
        "by_status": {"queued": 1, "processing": 0, "completed": 2, "failed": 0, "cancelled": 0},
        "total_chat_entries": 6,
        "average_processing_seconds": 6.0,
    }


async def test_stats_of_an_empty_store(client: httpx.AsyncClient) -> None:
    response = await client.get("/stats")
    assert response.json()["total_videos"] == 0
    assert response.json()["average_processing_seconds"] is None
