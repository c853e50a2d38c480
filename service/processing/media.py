"""Media probing with PyAV: is a file decodable media, and what is in it."""

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

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


THUMBNAIL_WIDTH = 320
POSTER_POSITION = 0.1
"""How far into a video its poster frame is taken, as a fraction of its duration."""
POSTER_SECONDS_WITHOUT_DURATION = 1.0
MAX_FRAMES_DECODED_FOR_POSTER = 500
"""After a seek, frames decoded at most to reach the poster's moment (a keyframe interval, at worst)."""
JPEG_QUALITY = 5
"""FFmpeg's JPEG quantizer scale: 2 is best, 31 worst."""
FF_QP2LAMBDA = 118


def poster_frame(source: Path | BinaryIO, duration: float | None) -> bytes | None:
    """A JPEG of the frame 10% into the video (1 s in when its duration is unknown), at most
    THUMBNAIL_WIDTH pixels wide, never enlarged; None when the file (a path, or a file object:
    one in GridFS) has no picture, or none of its frames can be decoded. Blocking: call it from a
    thread."""
    try:
        with av.open(str(source) if isinstance(source, Path) else source) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            moment = duration * POSTER_POSITION if duration else POSTER_SECONDS_WITHOUT_DURATION
            frame = _frame_at(container, stream, moment)
            return None if frame is None else _jpeg(frame, stream.codec_context.sample_aspect_ratio)
    except (av.FFmpegError, ValueError, OSError):
        return None


def _frame_at(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, moment: float
) -> av.VideoFrame | None:
    """The first frame at or after `moment` (seconds from the stream's start), or the last one
    before it when the video ends (or the decoding budget runs out) first."""
    if stream.time_base is not None:
        start = float((stream.start_time or 0) * stream.time_base)
        moment += start
        container.seek(int(moment / stream.time_base), stream=stream, backward=True)
    found = None
    for count, frame in enumerate(container.decode(stream), start=1):
        found = frame
        if frame.time is None or frame.time >= moment or count >= MAX_FRAMES_DECODED_FOR_POSTER:
            break
    return found


def _jpeg(frame: av.VideoFrame, sample_aspect_ratio: Fraction | None) -> bytes:
    display_width = frame.width * float(sample_aspect_ratio or 1)
    width = min(THUMBNAIL_WIDTH, round(display_width))
    height = max(2, round(width * frame.height / display_width / 2) * 2)
    width = max(2, width // 2 * 2)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 1)
    encoder.qscale = True
    encoder.global_quality = JPEG_QUALITY * FF_QP2LAMBDA
    scaled = frame.reformat(width=width, height=height, format="yuvj420p")
    return b"".join(bytes(packet) for packet in [*encoder.encode(scaled), *encoder.encode(None)])
