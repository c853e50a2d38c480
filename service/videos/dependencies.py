import re

from fastapi import Request

from service.users.dependencies import Viewer
from service.videos.models import Video
from service.videos.service import get_video

_LENGTH = re.compile(r"[0-9]{1,19}")


def content_length_of(request: Request) -> int | None:
    """The declared body length, when the client declared a plain one: ASCII digits (`isdigit()`
    passes `²`, which `int()` refuses), few enough for `int()` to read."""
    length = request.headers.get("content-length")
    return int(length) if length and _LENGTH.fullmatch(length) else None


async def video_from_path(video_id: str, viewer: Viewer) -> Video:
    """The video named by the path's `video_id`, if the viewer may see it; 404 before any response starts."""
    return await get_video(video_id, viewer)
