"""Chat latency with the offline `local` provider on a one-hour transcript.

    python -m bench.chat [--questions 50]

Builds a one-hour transcript (600 six-second segments, about 9,000 words, from varied generated
sentences), stores it as a completed video on the embedded store, and times POST /videos/{id}/chat
through the whole app (retrieval, answer, atomic $push) for each question. Prints p50 and p95;
the first question also builds the transcript's retrieval index, and is reported on its own.
"""

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from service.config import Settings
from service.main import create_app
from service.videos.models import Segment, Transcript
from tests.conftest import insert_completed_video

SUBJECTS = "the engineer,the council,the orchestra,our startup,the museum,the farmer,the pilot,the school,the river authority,the laboratory".split(",")
VERBS = "announced built repaired tested painted measured delayed funded opened discovered".split()
OBJECTS = "a solar bridge,a new vaccine,the harbour lighthouse,a quantum sensor,the winter festival,a battery factory,the mountain railway,an electric ferry,the city library,a robot arm".split(",")
PLACES = "in Lisbon,near Oslo,outside Nairobi,in Kyoto,next to the old mill,under the stadium,in the valley,by the coast".split(",")
TIMES = "last spring,in March,on Friday,after the storm,before the election,during the night,at dawn,in the autumn".split(",")


def one_hour_transcript(rng: random.Random) -> Transcript:
    segments = []
    for index in range(600):
        sentence = f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)} {rng.choice(TIMES)} at a cost of {rng.randint(2, 900)} thousand."
        segments.append(Segment(start=index * 6.0, end=index * 6.0 + 6.0, text=sentence + " " + sentence.split(" at a cost")[0] + "."))
    return Transcript(language="en", text=" ".join(s.text for s in segments), segments=segments)


def questions(rng: random.Random, count: int) -> list[str]:
    return [f"When did {rng.choice(SUBJECTS)} {rng.choice(VERBS).removesuffix('ed')} {rng.choice(OBJECTS)}?" for _ in range(count)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as directory:
        app = create_app(Settings(_env_file=None, data_dir=Path(directory), workers=0, llm_provider="local"))
        async with app.router.lifespan_context(app):
            video = await insert_completed_video(one_hour_transcript(rng), "one-hour.mp4")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
                timings = []
                for question in questions(rng, args.questions):
                    began = time.perf_counter()
                    response = await http.post(f"/videos/{video.id}/chat", json={"question": question})
                    timings.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 201, response.text
    ordered = sorted(timings)
    p95 = ordered[max(0, round(len(ordered) * 0.95) - 1)]
    words = len(one_hour_transcript(random.Random(11)).text.split())
    print(f"one-hour transcript: 600 segments, {words} words; {len(timings)} questions, local provider")
    print(f"first question (builds the index): {timings[0]:.1f} ms")
    print(f"chat latency: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (target p95 < 300 ms)")


if __name__ == "__main__":
    asyncio.run(main())
