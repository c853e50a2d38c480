from service.videos.models import Video
from service.videos.service import get_video


async def video_from_path(video_id: str) -> Video:
    """The video named by the path's `video_id`; 404 before any response starts."""
    return await get_video(video_id)
