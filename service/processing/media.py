"""Media probing with PyAV: is a file decodable media, and what is in it."""

from fractions import Fraction
from pathlib import Path

import av

from service.errors import UnsupportedMedia
from service.videos.models import AudioStreamInfo, MediaMetadata, VideoStreamInfo

_CONTENT_TYPES = {
    "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4",
    "matroska,webm": "video/x-matroska",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
    "mpeg": "video/mpeg",
    "flv": "video/x-flv",
    "ogg": "video/ogg",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
}


def content_type_of(container_format: str | None) -> str:
    return _CONTENT_TYPES.get(container_format or "", "application/octet-stream")


def _as_float(value: Fraction | float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None:
        return round(container.duration / av.time_base, 3)
    durations = [float(s.duration * s.time_base) for s in container.streams if s.duration and s.time_base]
    return round(max(durations), 3) if durations else None


def _decodes_a_frame(container: av.container.InputContainer, stream: av.stream.Stream) -> bool:
    try:
        for _ in container.decode(stream):
            return True
    except (av.FFmpegError, ValueError):
        return False
    return False


def probe(path: Path) -> MediaMetadata:
    """Metadata of a media file; UnsupportedMedia when nothing in it can be decoded.

    Blocking: call it from a thread.
    """
    if path.stat().st_size == 0:
        raise UnsupportedMedia("the uploaded file is empty")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError, OSError) as error:
        raise UnsupportedMedia(
            f"the uploaded file is not decodable audio or video ({error.__class__.__name__})"
        ) from None
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        first = video or audio
        if first is None or not _decodes_a_frame(container, first):
            raise UnsupportedMedia("the uploaded file has no decodable audio or video stream")
        return MediaMetadata(
            duration=_duration(container),
            format=container.format.name,
            size=path.stat().st_size,
            bit_rate=container.bit_rate or None,
            has_audio=audio is not None,
            video=None
            if video is None
            else VideoStreamInfo(
                codec=video.codec_context.name,
                width=video.codec_context.width,
                height=video.codec_context.height,
                fps=_as_float(video.average_rate),
            ),
            audio=None
            if audio is None
            else AudioStreamInfo(
                codec=audio.codec_context.name,
                sample_rate=audio.codec_context.sample_rate,
                channels=audio.codec_context.channels,
            ),
        )
