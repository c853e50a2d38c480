"""Search: MongoDB's documented `$text` semantics on the store under test, and matching moments."""

import random
from datetime import timedelta

import httpx
import pytest
from beanie import PydanticObjectId
from pymongo.errors import WriteError

from service.clock import utc_now
from service.db.mongodb import TEXT_SCORE
from service.pagination import encode_cursor
from service.videos.models import FileInfo, Segment, Transcript, Video
from tests.conftest import insert_completed_video

SAMPLES = {
    "launch.mp4": "The company launched its new rocket on Monday. Engineers watched the launch from the control room.",
    "coffee.mp4": "We talked about coffee and tea. The café downstairs makes good coffee.",
    "tea.mp4": "Green tea and black tea are both made from the same plant.",
    "door.mp4": "The front door of our office is painted green. A red car parked outside.",
    "garden.mp4": "In the garden the doors are green and the front is painted blue.",
}


def transcript_of(text: str, language: str = "en") -> Transcript:
    sentences = [s.strip() + "." for s in text.split(".") if s.strip()]
    segments = [Segment(start=i * 5.0, end=i * 5.0 + 5.0, text=s) for i, s in enumerate(sentences)]
    return Transcript(language=language, text=" ".join(sentences), segments=segments)


@pytest.fixture
async def samples(client: httpx.AsyncClient) -> dict[str, str]:
    ids = {}
    for filename, text in SAMPLES.items():
        ids[filename] = str((await insert_completed_video(transcript_of(text), filename)).id)
    return ids


async def found(http: httpx.AsyncClient, q: str, **params: str) -> list[str]:
    response = await http.get("/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return [hit["video"]["filename"] for hit in response.json()["items"]]


async def test_several_words_match_any(client: httpx.AsyncClient, samples: dict) -> None:
    assert sorted(await found(client, "rocket car")) == ["door.mp4", "launch.mp4"]


async def test_a_phrase_must_appear(client: httpx.AsyncClient, samples: dict) -> None:
    assert await found(client, '"front door"') == ["door.mp4"]
    assert sorted(await found(client, "green")) == ["door.mp4", "garden.mp4", "tea.mp4"]
    assert await found(client, 'green "painted green"') == ["door.mp4"]


async def test_negation_excludes(client: httpx.AsyncClient, samples: dict) -> None:
    assert await found(client, "tea -coffee") == ["tea.mp4"]
    assert await found(client, 'green -"front door" -tea') == ["garden.mp4"]
    assert await found(client, "-coffee") == []


async def test_stemming_finds_other_forms(client: httpx.AsyncClient, samples: dict) -> None:
    assert await found(client, "launches") == ["launch.mp4"]
    assert sorted(await found(client, "painting")) == ["door.mp4", "garden.mp4"]
    assert sorted(await found(client, "door")) == ["door.mp4", "garden.mp4"]


async def test_case_and_diacritics_are_folded(client: httpx.AsyncClient, samples: dict) -> None:
    assert await found(client, "CAFE") == ["coffee.mp4"]
    assert await found(client, "cafés") == ["coffee.mp4"]


async def test_stop_words_are_dropped(client: httpx.AsyncClient, samples: dict) -> None:
    assert await found(client, "the and of") == []
    assert await found(client, "the rocket") == await found(client, "rocket") == ["launch.mp4"]


async def test_ranking_follows_term_frequency_and_field_weights(client: httpx.AsyncClient, samples: dict) -> None:
    assert (await found(client, "tea"))[0] == "tea.mp4"
    assert (await found(client, "coffee"))[0] == "coffee.mp4"
    await insert_completed_video(transcript_of("We ordered one after lunch and talked."), "Espresso.mp4")
    await insert_completed_video(transcript_of("We ordered an espresso after lunch and talked."), "notes.mp4")
    ranked = await found(client, "espresso")
    assert ranked == ["Espresso.mp4", "notes.mp4"], (
        "a match in the filename (weight 3) outranks the transcript (weight 1)"
    )
    scores = [hit["score"] for hit in (await client.get("/search", params={"q": "espresso"})).json()["items"]]
    assert scores[0] > scores[1] > 0


async def test_text_score_through_the_motor_calls_matches_mongodb_formula(client: httpx.AsyncClient) -> None:
    await insert_completed_video(transcript_of("apple apple banana"), "fruit.mp4")
    [document] = (
        await Video.get_motor_collection().find({"$text": {"$search": "apple"}}, {"score": TEXT_SCORE}).to_list(None)
    )
    # transcript.text (weight 1): 'apple' twice among 3 terms: (1 + 1/2) * (0.5 * 2/3 + 0.5) = 1.25
    assert document["score"] == pytest.approx(1.25)
    assert set(document) >= {"_id", "filename", "transcript", "score"}


async def test_matching_moments_point_at_the_segments(client: httpx.AsyncClient, samples: dict) -> None:
    [hit] = (await client.get("/search", params={"q": "painted car"})).json()["items"][:1]
    assert hit["video"]["filename"] == "door.mp4"
    assert [(m["start"], m["text"]) for m in hit["matches"]] == [
        (0.0, "The front door of our office is painted green."),
        (5.0, "A red car parked outside."),
    ]


async def test_matching_moments_on_the_speech_fixture(client: httpx.AsyncClient, speech_transcript: Transcript) -> None:
    await insert_completed_video(speech_transcript)
    for query, spoken_at in (("pancakes", 14.0), ("Berlin train", 27.0), ("bicycle", 23.0), ('"apple trees"', 32.0)):
        [hit] = (await client.get("/search", params={"q": query})).json()["items"]
        best = hit["matches"][0]
        assert best["start"] <= spoken_at <= best["end"], (query, best)
        assert any(word in best["text"].lower() for word in query.lower().strip('"').split())


async def test_filters_and_pagination(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await insert_completed_video(transcript_of(f"Harbour report number {n}."), f"harbour-{n}.mp4")
    old = await insert_completed_video(transcript_of("Harbour news from long ago."), "old.mp4")
    await Video.get_motor_collection().update_one(
        {"_id": old.id}, {"$set": {"uploaded_at": utc_now() - timedelta(days=30), "status": "failed"}}
    )
    first = (await client.get("/search", params={"q": "harbour", "limit": 4})).json()
    second = (await client.get("/search", params={"q": "harbour", "limit": 4, "cursor": first["next_cursor"]})).json()
    names = [h["video"]["filename"] for page in (first, second) for h in page["items"]]
    assert sorted(names) == sorted([f"harbour-{n}.mp4" for n in range(5)] + ["old.mp4"])
    assert second["next_cursor"] is None
    assert await found(client, "harbour", status="failed") == ["old.mp4"]
    recent = await found(client, "harbour", uploaded_after=(utc_now() - timedelta(days=1)).isoformat())
    assert "old.mp4" not in recent and len(recent) == 5
    assert await found(client, "harbour", uploaded_before=(utc_now() - timedelta(days=1)).isoformat()) == ["old.mp4"]


async def test_pages_partition_tied_hits_in_a_total_order(client: httpx.AsyncClient) -> None:
    """Equal scores and equal dates: only `_id` orders them, so skip-based pages neither repeat
    nor miss a hit, on MongoDB as here, whatever order the documents were stored in."""
    same_time = utc_now().replace(microsecond=0)
    videos = [
        Video(
            filename="tied.mp4",
            file=FileInfo(key="0" * 32, size=1, sha256="0"),
            status="completed",
            transcript=transcript_of("The lighthouse keeper rang the bell."),
            uploaded_at=same_time,
        )
        for _ in range(11)
    ]
    for video in videos:
        video.id = PydanticObjectId()
    random.Random(7).shuffle(videos)
    await Video.insert_many(videos)
    seen, cursor = [], None
    while True:
        params = {"q": "lighthouse bell", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/search", params=params)).json()
        seen += [hit["video"]["id"] for hit in page["items"]]
        assert len({hit["score"] for hit in page["items"]}) <= 1
        if not (cursor := page["next_cursor"]):
            break
    assert seen == sorted((str(video.id) for video in videos), reverse=True)


@pytest.mark.parametrize(
    "params",
    [
        {"q": ""},
        {"q": "   "},
        {},
        {"q": "x", "limit": 0},
        {"q": "x", "cursor": "nope"},
        {"q": "x", "status": "odd"},
        {"q": "x", "cursor": encode_cursor("offset", 2**63)},
        {"q": "x", "cursor": encode_cursor("offset", "²")},
    ],
)
async def test_bad_queries_are_422(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get("/search", params=params)
    assert response.status_code == 422
    assert "detail" in response.json()


async def test_a_query_matching_nothing_is_an_empty_page(client: httpx.AsyncClient, samples: dict) -> None:
    response = await client.get("/search", params={"q": "zeppelin"})
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_a_japanese_video_saves_because_the_override_field_is_ours(client: httpx.AsyncClient) -> None:
    video = await insert_completed_video(transcript_of("こんにちは。", language="ja"), "japanese.mp4")
    assert (await Video.get(video.id)).transcript.language == "ja"
    assert video.search_language == "none"


async def test_an_unsupported_override_value_is_refused_as_mongodb_does(client: httpx.AsyncClient) -> None:
    video = await insert_completed_video(transcript_of("Plain words."), "plain.mp4")
    with pytest.raises(WriteError) as refused:
        await Video.get_motor_collection().update_one({"_id": video.id}, {"$set": {"search_language": "ja"}})
    assert refused.value.code == 17262
    assert (await Video.get(video.id)).search_language == "english"


async def test_with_the_default_override_a_language_field_of_ja_would_be_refused(client: httpx.AsyncClient) -> None:
    """Why the index names its own override field: MongoDB's default reads `language`."""
    collection = Video.get_motor_collection().database["default_override"]
    await collection.create_index([("text", "text")])
    await collection.insert_one({"text": "fine", "language": "spanish"})
    with pytest.raises(WriteError) as refused:
        await collection.insert_one({"text": "konnichiwa", "language": "ja"})
    assert refused.value.code == 17262
    assert await collection.count_documents({}) == 1
