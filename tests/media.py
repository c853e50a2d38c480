"""Real media files made at test time with PyAV, for sizes the committed fixtures do not cover."""

import struct
from pathlib import Path

import av
import numpy as np


def write_raw_video(path: Path, frames: int, width: int = 320, height: int = 240) -> Path:
    """A lossless Matroska video of noise: about width*height*3 bytes per frame, decodable by PyAV."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
        for _ in range(frames):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def remux(source: Path, target: Path, container_format: str) -> Path:
    """Copy every stream of `source` into another container without re-encoding."""
    with av.open(str(source)) as reader, av.open(str(target), "w", format=container_format) as writer:
        streams = {s.index: writer.add_stream_from_template(s) for s in reader.streams if s.type in ("audio", "video")}
        for packet in reader.demux(*[reader.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            writer.mux(packet)
    return target


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    """A mono 16-bit WAV file of `samples` (int16, or floats in -1..1)."""
    if samples.dtype != np.int16:
        samples = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[np.newaxis, :], format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def write_tone(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A WAV file of a 440 Hz tone: audio and no picture."""
    samples = (np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate) * 8000).astype(np.int16)
    return write_wav(path, samples, rate)


def loop_media(source: Path, target: Path, minutes: float) -> Path:
    """Repeat `source` (every stream, no re-encoding) until it lasts about `minutes`.

    Each stream's copy starts where that stream's previous copy ended, so timestamps keep rising.
    """
    with av.open(str(source)) as probe:
        seconds = probe.duration / av.time_base
    repeats = max(1, round(minutes * 60 / seconds))
    with av.open(str(source)) as template, av.open(str(target), "w", format="matroska") as writer:
        streams = {s.index: writer.add_stream_from_template(s) for s in template.streams}
        offsets = dict.fromkeys(streams, 0)
        for _ in range(repeats):
            ends = dict(offsets)
            first_dts: dict[int, int] = {}
            with av.open(str(source)) as reader:
                for packet in reader.demux():
                    if packet.dts is None:
                        continue
                    index = packet.stream.index
                    start = offsets[index] - first_dts.setdefault(index, min(0, packet.dts))
                    packet.pts += start
                    packet.dts += start
                    ends[index] = max(ends[index], packet.dts + (packet.duration or 0) + 1)
                    packet.stream = streams[index]
                    writer.mux(packet)
            offsets = ends
    return target


MATROSKA_DURATION = b"\x44\x89\x88"
"""The Matroska Duration element's ID and its size (an 8-byte float, in milliseconds as PyAV writes it)."""


def declaring_duration(source: Path, target: Path, seconds: float) -> Path:
    """A Matroska copy of `source` whose header declares `seconds` of duration, whatever its streams hold."""
    data = bytearray(remux(source, target, "matroska").read_bytes())
    at = data.index(MATROSKA_DURATION) + len(MATROSKA_DURATION)
    data[at : at + 8] = struct.pack(">d", seconds * 1000)
    target.write_bytes(bytes(data))
    return target
