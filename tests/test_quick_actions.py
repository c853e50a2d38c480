"""Requests about the whole video ("10 key points", "create 10 Q&A", "detailed summary": the old
page's quick actions) are answered from the stored summary, key points and chapters, with the
moments they come from, instead of "the video does not talk about that"."""

import re
from pathlib import Path

import httpx
import pytest

from service.ai.intents import WholeVideoRequest, whole_video_request
from service.text import timed_sentences
from service.videos.models import Summary, Transcript, Video
from tests.conftest import insert_completed_video, serving
from tests.openai_server import Reply, fake_openai_server, openai_settings
from tests.store import StoreDatabase

OLD_PAGE_QUICK_ACTIONS = ["Create 10 Q&A", "10 Key Points", "Detailed Summary"]
_MOMENT = re.compile(r"\[(\d+):(\d\d)–(\d+):(\d\d)\]")


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Create 10 Q&A", WholeVideoRequest("questions", 10, detailed=False)),
        ("create 10 q & a from this video", WholeVideoRequest("questions", 10, detailed=False)),
        ("Give me five questions and answers", WholeVideoRequest("questions", 5, detailed=False)),
        ("Make a quiz", WholeVideoRequest("questions", None, detailed=False)),
        ("10 Key Points", WholeVideoRequest("key_points", 10, detailed=False)),
        ("What are the main takeaways?", WholeVideoRequest("key_points", None, detailed=False)),
        ("List 3 highlights of the video, please", WholeVideoRequest("key_points", 3, detailed=False)),
        ("Detailed Summary", WholeVideoRequest("summary", None, detailed=True)),
        ("Summarize this video.", WholeVideoRequest("summary", None, detailed=False)),
        ("What is this video about?", WholeVideoRequest("summary", None, detailed=False)),
        ("tl;dr", WholeVideoRequest("summary", None, detailed=False)),
        ("Show me the chapters", WholeVideoRequest("chapters", None, detailed=False)),
        ("Give me 1000 key points", WholeVideoRequest("key_points", 50, detailed=False)),
        ("10000000 key points", WholeVideoRequest("key_points", 50, detailed=False)),
        ("create -1 Q&A", WholeVideoRequest("questions", 1, detailed=False)),
        ("What are the main points about the weather?", None),
        ("Which questions does Clara answer?", None),
        ("Summarize what Robert owns", None),
        ("Where does Clara live?", None),
        ("What is the capital of Australia?", None),
    ],
)
def test_whole_video_requests_are_told_from_questions_about_something_in_it(
    question: str, expected: WholeVideoRequest | None
) -> None:
    assert whole_video_request(question) == expected


async def summarized_video(client: httpx.AsyncClient, transcript: Transcript) -> tuple[Video, dict]:
    video = await insert_completed_video(transcript)
    summary = (await client.post(f"/videos/{video.id}/summarize")).json()
    assert len(summary["key_points"]) == 5 and summary["chapters"]
    return video, summary


async def test_the_old_pages_quick_actions_get_the_stored_summary_key_points_and_chapters(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video, summary = await summarized_video(client, speech_transcript)
    answers = {}
    for question in OLD_PAGE_QUICK_ACTIONS:
        row = (await client.post("/ask-question/", json={"video_id": str(video.id), "question": question})).json()
        assert "does not seem to talk about that" not in row["answer"]
        answers[question] = row["answer"]
    entries = {e["question"]: e for e in (await client.get(f"/videos/{video.id}/chat")).json()["items"]}

    key_points = answers["10 Key Points"]
    assert key_points.startswith("Key points (5 of the 10 asked: the summary holds no more):")
    for number, point in enumerate(summary["key_points"], start=1):
        assert f"{number}. " in key_points and point in key_points
    assert [c["text"] for c in entries["10 Key Points"]["citations"]] == summary["key_points"]
    for citation in entries["10 Key Points"]["citations"]:
        assert citation["text"] in speech_transcript.text
        assert 0 <= citation["start"] < citation["end"] <= speech_transcript.segments[-1].end
        spoken = " ".join(
            s.text for s in speech_transcript.segments if s.end > citation["start"] and s.start < citation["end"]
        )
        assert citation["text"][:20] in spoken

    detailed = answers["Detailed Summary"]
    assert detailed.startswith(f"Summary: {summary['text']}")
    for chapter in summary["chapters"]:
        assert chapter["title"] in detailed
    assert all(point in detailed for point in summary["key_points"])
    assert _MOMENT.search(detailed)

    questions_and_answers = answers["Create 10 Q&A"]
    assert questions_and_answers.startswith("Questions and answers (5 of the 10 asked")
    assert questions_and_answers.count("Q: ") == 5 and questions_and_answers.count("A: ") == 5
    assert all(point in questions_and_answers for point in summary["key_points"])
    assert len(entries["Create 10 Q&A"]["citations"]) == 5


async def test_a_request_for_fewer_items_gets_that_many_with_the_moments_they_are_said(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video, summary = await summarized_video(client, speech_transcript)
    said = {sentence.text: sentence for sentence in timed_sentences(speech_transcript.segments)}
    entry = (await client.post(f"/videos/{video.id}/chat", json={"question": "Give me 2 key points"})).json()
    expected = ["Key points:"]
    for number, point in enumerate(summary["key_points"][:2], start=1):
        expected.append(f"{number}. [{clock(said[point].start)}–{clock(said[point].end)}] {point}")
    assert entry["answer"] == "\n".join(expected)
    assert [(c["start"], c["end"]) for c in entry["citations"]] == [
        (said[point].start, said[point].end) for point in summary["key_points"][:2]
    ]


def clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


async def test_a_video_without_a_summary_says_so(client: httpx.AsyncClient, speech_transcript: Transcript) -> None:
    video = await insert_completed_video(speech_transcript)
    entry = (await client.post(f"/videos/{video.id}/chat", json={"question": "10 Key Points"})).json()
    assert entry["answer"] == "This video has no summary yet to answer that from."
    assert entry["citations"] == []


async def test_a_summary_without_key_points_answers_with_its_text(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    """A video migrated from the SQLite service has a summary text and nothing else."""
    video = await insert_completed_video(speech_transcript)
    await Video.get_motor_collection().update_one(
        {"_id": video.id},
        {"$set": {"summary": Summary(text="A short talk about Lisbon.", model="legacy").model_dump()}},
    )
    entry = (await client.post(f"/videos/{video.id}/chat", json={"question": "10 Key Points"})).json()
    assert entry["answer"] == "Summary: A short talk about Lisbon."


async def test_an_ordinary_question_is_still_answered_from_the_transcript(
    client: httpx.AsyncClient, speech_transcript: Transcript
) -> None:
    video, _ = await summarized_video(client, speech_transcript)
    entry = (
        await client.post(f"/videos/{video.id}/chat", json={"question": "Which questions does Robert's cat answer?"})
    ).json()
    assert not entry["answer"].startswith(("Questions and answers", "Key points", "Summary"))


async def test_a_model_gets_the_stored_summary_with_its_moments(
    tmp_path: Path, store: StoreDatabase, speech_transcript: Transcript
) -> None:
    with fake_openai_server() as fake:
        async with serving(openai_settings(tmp_path, store, fake.base_url)) as http:
            video = await insert_completed_video(speech_transcript)
            summary = Summary(
                text="Clara talks about Lisbon.",
                key_points=["My friend Robert owns a red bicycle and a black cat.", "Not said word for word."],
                model="test",
                language="en",
            )
            await Video.get_motor_collection().update_one(
                {"_id": video.id}, {"$set": {"summary": summary.model_dump()}}
            )
            fake.script(Reply("content", "1. Robert owns a cat (0:21)."))
            assert (await http.post(f"/videos/{video.id}/chat", json={"question": "10 Key Points"})).status_code == 201
    user = fake.user_messages()[-1]
    assert "<summary>Clara talks about Lisbon." in user
    assert re.search(r"- \[0:2\d–0:2\d\] My friend Robert owns a red bicycle and a black cat\.", user)
    assert "- Not said word for word." in user
    assert "(no excerpt matched the question)" in user
