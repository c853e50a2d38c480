from service.users.dependencies import Viewer
from service.videos.models import Video
from service.videos.service import get_video


async def video_from_path(video_id: str, viewer: Viewer) -> Video:
    """The video named by the path's `video_id`, if the viewer may see it; 404 before any response starts."""
    return await get_video(video_id, viewer)
