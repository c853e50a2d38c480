"""Generated transcripts for benchmarks: varied sentences about many subjects, with timings."""

import random

from bson import ObjectId

from service.clock import utc_now
from service.videos.models import FileInfo, Job, Segment, Transcript, Video

SUBJECTS = "the engineer,the council,the orchestra,our startup,the museum,the farmer,the pilot,the school,the river authority,the laboratory,the bakery,the hospital,the football club,the festival crew,the harbour master".split(
    ","
)
VERBS = "announced built repaired tested painted measured delayed funded opened discovered launched cancelled designed inspected celebrated".split()
OBJECTS = "a solar bridge,a new vaccine,the harbour lighthouse,a quantum sensor,the winter festival,a battery factory,the mountain railway,an electric ferry,the city library,a robot arm,a wind farm,the glass tower,a water filter,the night market,a carbon capture plant".split(
    ","
)
PLACES = "in Lisbon,near Oslo,outside Nairobi,in Kyoto,next to the old mill,under the stadium,in the valley,by the coast,in Montreal,near the border,in the desert,on the island".split(
    ","
)
TIMES = "last spring,in March,on Friday,after the storm,before the election,during the night,at dawn,in the autumn,last decade,this morning".split(
    ","
)


def sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
        f"{rng.choice(PLACES)} {rng.choice(TIMES)} at a cost of {rng.randint(2, 900)} thousand."
    )


def transcript(rng: random.Random, segments: int, sentences_per_segment: int = 2, seconds: float = 6.0) -> Transcript:
    timed = [
        Segment(
            start=i * seconds, end=(i + 1) * seconds, text=" ".join(sentence(rng) for _ in range(sentences_per_segment))
        )
        for i in range(segments)
    ]
    return Transcript(language="en", text=" ".join(s.text for s in timed), segments=timed)


def question(rng: random.Random) -> str:
    return f"When did {rng.choice(SUBJECTS)} {rng.choice(VERBS).removesuffix('ed')} {rng.choice(OBJECTS)}?"


def video_document(rng: random.Random, index: int, queued: bool) -> dict:
    """A video as stored: queued, or completed with a transcript of 40 segments."""
    video = Video(
        filename=f"video-{index}.mp4",
        file=FileInfo(key=f"k{index}", size=1, sha256="0"),
        status="queued" if queued else "completed",
        job=Job(stage="queued" if queued else "done", queued_at=utc_now()),
        transcript=None if queued else transcript(rng, 40),
    )
    document = video.model_dump(by_alias=True, exclude={"id", "revision_id"})
    document["_id"] = ObjectId()
    return document


async def insert_videos(count: int, queued_every: int = 0) -> None:
    """`count` videos straight into the store Beanie was initialised with, in batches of 1,000;
    every `queued_every`-th one queued (0: none)."""
    rng = random.Random(7)
    collection = Video.get_motor_collection()
    for start in range(0, count, 1000):
        numbers = range(start, min(count, start + 1000))
        await collection.insert_many(
            [video_document(rng, n, queued=bool(queued_every) and n % queued_every == 0) for n in numbers]
        )
