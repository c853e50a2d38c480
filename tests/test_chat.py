"""Questions about a video with the offline `local` provider, on the committed speech fixture."""

import asyncio
import json

import httpx
import pytest

from service.db.mongodb import MAX_DOCUMENT_BYTES, document_size
from service.videos.models import ChatEntry, Transcript, Video
from tests.conftest import SPEECH_VIDEO, flagged, insert_completed_video, upload

QUESTIONS_AND_ANSWERS = [
    ("What is the speaker's name?", "clara"),
    ("Which city does Clara live in?", "lisbon"),
    ("What product will the company launch?", "falcon"),
    ("When will the Falcon phone launch?", "march"),
    ("How many days will it rain according to the forecast?", "three days"),
    ("How many eggs go into the pancakes?", "five eggs"),
    ("What colour is the front door of the office?", "green"),
    ("What pet does Robert have?", "cat"),
    ("What time does the morning train to Berlin leave?", "seven"),
    ("What did we plant in the garden last spring?", "apple trees"),
]


async def ask(http: httpx.AsyncClient, video_id: str, question: str, **extra: str) -> httpx.Response:
    return await http.post(f"/videos/{video_id}/chat", json={"question": question, **extra})


async def test_the_top_citation_holds_the_answer(client: httpx.AsyncClient, speech_transcript: Transcript) -> None:
    video = await insert_completed_video(speech_transcript)
    hits = 0
    for question, answer in QUESTIONS_AND_ANSWERS:
        response = await ask(client, str(video.id), question)
        assert response.status_code == 201
        entry = response.json()
        assert entry["question"] == question
        assert entry["model"] == "local-extractive"
        assert entry["language"] == "en"
        citations = entry["citations"]
        if citations and answer in citations[0]["text"].lower():
            hits += 1
            assert 0 <= citations[0]["start"] < citations[0]["end"] <= speech_transcript.segments[-1].end
            assert citations[0]["text"] in entry["answer"]
    assert hits / len(QUESTIONS_AND_ANSWERS) >= 0.8, hits


@pytest.mark.parametrize("question", ["What is the capital of Australia?", "Does the video explain quantum physics?"])
async def test_an_unrelated_question_gets_the_plain_no_match_statement(
    client: httpx.AsyncClient, speech_transcript: Transcript, question: str
) -> None:
    video = await insert_completed_video(speech_transcript)
    entry = (await ask(client, str(video.id), question)).json()
    assert entry["citations"] == []
    assert entry["answer"].startswith("The video does not seem to talk about that")


async def test_a_follow_up_question_leans_on_the_previous_one(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    await ask(client, str(video.id), "Tell me about the morning train to Berlin.")
    follow_up = (await ask(client, str(video.id), "And when?")).json()
    assert "seven" in follow_up["citations"][0]["text"]
    unrelated = (await ask(client, str(video.id), "What is the capital of Australia?")).json()
    assert unrelated["citations"] == []


async def test_twenty_concurrent_questions_all_land(client: httpx.AsyncClient, speech_transcript: Transcript) -> None:
    video = await insert_completed_video(speech_transcript)
    questions = [f"Question {n}: where does Clara live?" for n in range(20)]
    responses = await asyncio.gather(*(ask(client, str(video.id), q) for q in questions))
    assert [r.status_code for r in responses] == [201] * 20
    stored = (await client.get(f"/videos/{video.id}/chat", params={"limit": 100})).json()["items"]
    assert sorted(entry["question"] for entry in stored) == sorted(questions)
    assert len({entry["id"] for entry in stored}) == 20


async def test_history_is_oldest_first_and_paginated(client: httpx.AsyncClient, speech_transcript: Transcript) -> None:
    video = await insert_completed_video(speech_transcript)
    for n in range(5):
        await ask(client, str(video.id), f"Question number {n} about Lisbon")
    first = (await client.get(f"/videos/{video.id}/chat", params={"limit": 2})).json()
    second = (await client.get(f"/videos/{video.id}/chat", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await client.get(f"/videos/{video.id}/chat", params={"limit": 2, "cursor": second["next_cursor"]})).json()
    questions = [e["question"] for page in (first, second, third) for e in page["items"]]
    assert questions == [f"Question number {n} about Lisbon" for n in range(5)]
    assert third["next_cursor"] is None
    assert (await client.get(f"/videos/{video.id}/chat", params={"cursor": "!!"})).status_code == 422
    assert (await client.get("/videos/0123456789abcdef01234567/chat")).status_code == 404


async def test_streamed_answer_sends_deltas_then_the_stored_entry(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    response = await client.post(
        f"/videos/{video.id}/chat", params={"stream": "true"}, json={"question": "Who owns a black cat?"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
        for block in response.text.strip().split("\n\n")
    ]
    assert [name for name, _ in events] == ["delta", "entry"]
    entry = events[-1][1]
    assert "".join(data["text"] for name, data in events if name == "delta") == entry["answer"]
    assert "Robert" in entry["citations"][0]["text"]
    stored = (await client.get(f"/videos/{video.id}/chat")).json()["items"]
    assert [e["id"] for e in stored] == [entry["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "   "},
        {"question": "x" * 2001},
        {},
        {"question": "ok", "language": "not a language"},
    ],
)
async def test_bad_questions_are_422(client: httpx.AsyncClient, speech_transcript: Transcript, body: dict) -> None:
    video = await insert_completed_video(speech_transcript)
    response = await client.post(f"/videos/{video.id}/chat", json=body)
    assert response.status_code == 422
    assert (await client.get(f"/videos/{video.id}/chat")).json()["items"] == []


async def test_a_video_not_yet_completed_is_409_with_its_status(client: httpx.AsyncClient) -> None:
    video_id = (await upload(client, SPEECH_VIDEO)).json()["id"]
    response = await ask(client, video_id, "Where does Clara live?")
    assert response.status_code == 409
    assert "queued" in response.json()["detail"]
    assert (await ask(client, "0123456789abcdef01234567", "Where?")).status_code == 404


async def test_a_question_that_would_pass_16_mb_is_507_and_stores_nothing(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video = await insert_completed_video(speech_transcript)
    collection = Video.get_motor_collection()
    room = MAX_DOCUMENT_BYTES - document_size(await collection.find_one({"_id": video.id}))
    filler = ChatEntry(id="filler", question="q", answer="x" * (room - 1500)).model_dump()
    await collection.update_one({"_id": video.id}, {"$push": {"chat": filler}})
    response = await ask(client, str(video.id), "Where does Clara live? " + "Tell me more. " * 100)
    assert response.status_code == 507
    assert "16 MB" in response.json()["detail"]
    assert [e["id"] for e in (await client.get(f"/videos/{video.id}/chat")).json()["items"]] == ["filler"]


async def test_a_citation_of_a_low_confidence_segment_is_marked(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    """A passage from a segment the model was unsure of is cited with `low_confidence`, and the
    answer's note says so; a passage from a confident segment is not marked."""
    transcript = flagged(speech_transcript, "Lisbon")
    assert not any(segment.low_confidence for segment in transcript.segments if "Berlin" in segment.text)
    video = await insert_completed_video(transcript)

    doubtful = (await ask(client, str(video.id), "Which city does Clara live in?")).json()
    assert "lisbon" in doubtful["citations"][0]["text"].lower()
    assert doubtful["citations"][0]["low_confidence"] is True
    assert "low confidence" in doubtful["note"]

    confident = (await ask(client, str(video.id), "What time does the morning train to Berlin leave?")).json()
    assert "berlin" in confident["citations"][0]["text"].lower()
    assert not any(citation["low_confidence"] for citation in confident["citations"])
    assert confident["note"] is None

    stored = (await client.get(f"/videos/{video.id}/chat")).json()["items"]
    assert [entry["citations"][0]["low_confidence"] for entry in stored] == [True, False]
