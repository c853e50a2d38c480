"""Generate small video fixtures for the transcription tests.

Produces, in the output directory:

* ``speech.mp4``   -- a tiny colour video with a known English script spoken
  by espeak-ng as a mono AAC audio track.
* ``speech.txt``   -- exactly the script text that was spoken.
* ``no_audio.mp4`` -- a few seconds of video with no audio stream at all.

Only whoever regenerates the fixtures needs ``espeak-ng`` installed; the tests
use the committed outputs.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

# Each sentence carries one distinct, checkable fact. Numbers are spelled out
# so that word-error-rate comparison against a transcript stays simple.
SENTENCES: tuple[str, ...] = (
    "My name is Clara Jensen and I live in Lisbon.",
    "Our company will launch the new Falcon phone next March.",
    "The weather forecast says it will rain for three days.",
    "To make pancakes, mix five eggs with a cup of milk.",
    "The front door of our office is painted green.",
    "My friend Robert owns a red bicycle and a black cat.",
    "The morning train to Berlin leaves at seven o'clock.",
    "We planted apple trees in the garden last spring.",
)
SCRIPT: str = " ".join(SENTENCES)

WIDTH, HEIGHT = 160, 120
FPS = 5
AUDIO_RATE = 16_000
AAC_FRAME_SIZE = 1024
NO_AUDIO_SECONDS = 3.0
ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 140
ESPEAK_WORD_GAP = 2  # extra pause between words, in units of 10 ms


def synthesize_speech(text: str, wav_path: Path) -> None:
    """Speak ``text`` with espeak-ng into a WAV file."""
    subprocess.run(
        [
            "espeak-ng",
            "-v",
            ESPEAK_VOICE,
            "-s",
            str(ESPEAK_WPM),
            "-g",
            str(ESPEAK_WORD_GAP),
            "-w",
            str(wav_path),
            text,
        ],
        check=True,
    )


def load_audio_frames(wav_path: Path) -> list[av.AudioFrame]:
    """Decode a WAV file into mono AAC-ready frames at ``AUDIO_RATE``."""
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE, frame_size=AAC_FRAME_SIZE)
    frames: list[av.AudioFrame] = []
    with av.open(str(wav_path)) as source:
        for frame in source.decode(audio=0):
            frames.extend(resampler.resample(frame))
    frames.extend(resampler.resample(None))
    return frames


def video_codec_name() -> str:
    """Prefer H.264 when PyAV ships libx264, otherwise fall back to MPEG-4."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def add_video_stream(container: OutputContainer) -> VideoStream:
    """Add a small, low-frame-rate video stream to ``container``."""
    stream = container.add_stream(video_codec_name(), rate=FPS)
    stream.width = WIDTH
    stream.height = HEIGHT
    stream.pix_fmt = "yuv420p"
    if stream.codec_context.name == "libx264":
        stream.options = {"crf": "35", "preset": "veryslow"}
    return stream


def add_audio_stream(container: OutputContainer) -> AudioStream:
    """Add a mono AAC audio stream to ``container``."""
    stream = container.add_stream("aac", rate=AUDIO_RATE)
    stream.layout = "mono"
    stream.bit_rate = 32_000
    return stream


def colour_frames(seconds: float) -> Iterator[av.VideoFrame]:
    """Yield frames whose colour drifts slowly from blue towards orange."""
    count = max(1, round(seconds * FPS))
    for index in range(count):
        t = index / max(1, count - 1)
        rgb = np.array([40 + 200 * t, 80 + 60 * t, 200 - 160 * t], dtype=np.uint8)
        image = np.broadcast_to(rgb, (HEIGHT, WIDTH, 3)).copy()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index
        frame.time_base = Fraction(1, FPS)
        yield frame


def write_video(container: OutputContainer, stream: VideoStream, seconds: float) -> None:
    """Encode ``seconds`` of colour frames into ``stream`` and flush it."""
    for frame in colour_frames(seconds):
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio(container: OutputContainer, stream: AudioStream, frames: list[av.AudioFrame]) -> None:
    """Encode the given audio frames into ``stream`` and flush it."""
    pts = 0
    for frame in frames:
        frame.pts = pts
        pts += frame.samples
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def build_speech_video(wav_path: Path, out_path: Path) -> None:
    """Mux a colour video and the speech in ``wav_path`` into ``out_path``."""
    audio_frames = load_audio_frames(wav_path)
    seconds = sum(frame.samples for frame in audio_frames) / AUDIO_RATE
    with av.open(str(out_path), mode="w") as container:
        video = add_video_stream(container)
        audio = add_audio_stream(container)
        write_video(container, video, seconds)
        write_audio(container, audio, audio_frames)


def build_silent_video(out_path: Path) -> None:
    """Write a short video with no audio stream to ``out_path``."""
    with av.open(str(out_path), mode="w") as container:
        video = add_video_stream(container)
        write_video(container, video, NO_AUDIO_SECONDS)


def parse_args() -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path("tests/fixtures"),
        help="directory to write the fixtures into (default: tests/fixtures)",
    )
    return parser.parse_args()


def main() -> None:
    """Generate all fixtures into the requested directory."""
    out_dir: Path = parse_args().out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        synthesize_speech(SCRIPT, wav_path)
        build_speech_video(wav_path, out_dir / "speech.mp4")
    (out_dir / "speech.txt").write_text(SCRIPT, encoding="utf-8")
    build_silent_video(out_dir / "no_audio.mp4")
    for name in ("speech.mp4", "speech.txt", "no_audio.mp4"):
        print(f"wrote {out_dir / name} ({(out_dir / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
