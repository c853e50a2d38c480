"""`$text` as MongoDB's text index version 3, against MongoDB's own cases: the `$text` manual
page's `articles` collection, the text index page's `stores`, the scoring formula, and the
tokenizer's rules (delimiters, the English apostrophe, stemming before folding, stop words); each
through the store and through `/search`, whose matching moments follow the same rules."""

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from service.config import Settings
from service.db.service import Database, connect
from service.text import codepoints, fold, terms, words
from service.text.query import FoldedTexts, parse_text_query
from service.videos.models import Segment, Transcript
from tests.conftest import insert_completed_video
from tests.test_search import found, transcript_of

ARTICLES = [
    {"_id": 1, "subject": "coffee", "author": "xyz", "views": 50},
    {"_id": 2, "subject": "Coffee Shopping", "author": "efg", "views": 5},
    {"_id": 3, "subject": "Baking a cake", "author": "abc", "views": 90},
    {"_id": 4, "subject": "baking", "author": "xyz", "views": 100},
    {"_id": 5, "subject": "Café Con Leche", "author": "abc", "views": 200},
    {"_id": 6, "subject": "Сырники", "author": "jkl", "views": 80},
    {"_id": 7, "subject": "coffee and cream", "author": "efg", "views": 10},
    {"_id": 8, "subject": "Cafe con Leche", "author": "xyz", "views": 10},
]
"""The `$text` manual page's example collection, with a text index on `subject`."""

MANUAL_EXAMPLES = [
    ("coffee", {}, {1, 2, 7}),  # "Search for a Single Word"
    ("bake coffee cake", {}, {1, 2, 3, 4, 7}),  # "Match Any of the Search Terms"
    ('"coffee shop"', {}, {2}),  # "Search for a Phrase": a substring of "Coffee Shopping"
    ("coffee -shop", {}, {1, 7}),  # "Exclude Documents That Contain a Term"
    ("leche", {"$language": "es"}, {5, 8}),  # "Search a Different Language"
    ("сы\u0301рники CAFÉS", {}, {5, 6, 8}),  # "Case and Diacritic Insensitive Search"
]

STORES = [
    {"_id": 1, "name": "Java Hut", "description": "Coffee and cakes"},
    {"_id": 2, "name": "Burger Buns", "description": "Gourmet hamburgers"},
    {"_id": 3, "name": "Coffee Shop", "description": "Just coffee"},
    {"_id": 4, "name": "Clothes Clothes Clothes", "description": "Discount clothing"},
    {"_id": 5, "name": "Java Shopping", "description": "Indonesian goods"},
    {"_id": 6, "name": "NYC_Coffee Shop", "description": "local NYC coffee"},
]
"""The text index page's example (a text index on `name` and `description`)."""

TOKENIZER_CASES = [
    ("the front-door opens", "english", '"front door"', False),  # a phrase is a substring
    ("the front-door opens", "english", "front door", True),  # `-` cuts words
    ("the front,  door opens", "english", '"front door"', False),
    ("the front door opens", "english", '"front door"', True),
    ("call snake_case helpers", "english", "snake", False),  # `_` is no delimiter
    ("call snake_case helpers", "english", "snake_case", True),
    ("O'Neill spoke", "english", "neill", False),  # the apostrophe stays inside English words
    ("O'Neill spoke", "english", "o'neill", True),
    ("l'hiver dernier", "french", "hiver", True),  # and cuts French ones
    ("Les pommes mangées", "french", "manger", True),  # stemmed before the accent goes
    ("el perro y el gato", "spanish", "el", False),  # Spanish stop words
    ("el perro y el gato", "spanish", "perros", True),
    ("der Hund und die Katze", "german", "und", False),  # German stop words
    ("der Hund und die Katze", "german", "hunde", True),
]


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    opened = await connect(settings)
    yield opened
    opened.close()


@pytest.fixture
async def articles(database: Database) -> object:
    collection = database.handle["articles"]
    await collection.create_index([("subject", "text")])
    await collection.insert_many(ARTICLES)
    return collection


async def matching(collection: object, search: str, **options: str) -> set[int]:
    return {doc["_id"] for doc in await collection.find({"$text": {"$search": search, **options}}).to_list(None)}


async def score_of(collection: object, search: str) -> dict[int, float]:
    cursor = collection.find({"$text": {"$search": search}}, {"score": {"$meta": "textScore"}})
    return {doc["_id"]: doc["score"] for doc in await cursor.to_list(None)}


@pytest.mark.parametrize("search, options, expected", MANUAL_EXAMPLES)
async def test_the_text_manual_pages_articles_examples(
    articles: object, search: str, options: dict, expected: set
) -> None:
    assert await matching(articles, search, **options) == expected


@pytest.mark.parametrize(
    "search, expected",
    [
        ("CAFÉ", {5, 8}),
        ('"café con"', {5, 8}),
        ('coffee -"coffee shop"', {1, 7}),
        ('-"coffee shop" coffee', {1, 7}),
        ("-coffee", set()),  # only negated words: nothing
        ("the and a", set()),  # only stop words: nothing
        ('"Shopping"', {2}),  # a phrase's words are query words too
        ("cream-coffee", {1, 2, 7}),  # `-` after a letter is no negation
        ("coffee -cream-shop", {1}),  # a negation runs to the next white space
        ("coffee - cream", {1, 2, 7}),  # a lone `-` negates nothing
    ],
)
async def test_query_parsing_on_the_articles(articles: object, search: str, expected: set) -> None:
    assert await matching(articles, search) == expected


async def test_a_phrase_is_matched_in_the_stored_text(database: Database) -> None:
    stores = database.handle["stores"]
    await stores.create_index([("name", "text"), ("description", "text")])
    await stores.insert_many(STORES)
    assert await matching(stores, '"coffee shop"') == {3, 6}  # "NYC_Coffee Shop" holds it
    assert await matching(stores, '"COFFEé SHOP"') == {3, 6}  # case and diacritics aside
    assert await matching(stores, "java -shop") == {1}
    assert await matching(stores, "nyc_coffee") == {6}


async def test_scores_follow_mongodbs_formula(database: Database) -> None:
    notes = database.handle["notes"]
    await notes.create_index([("text", "text")])
    await notes.insert_many(
        [
            {"_id": 1, "text": "Baking a cake"},  # `a` is a stop word: 1 of 2 terms, 1 * (0.5 * 1/2 + 0.5)
            {"_id": 2, "text": "cake"},  # the whole string is its term: 1 * (0.5 + 0.5) * 1.1
            {"_id": 3, "text": "apple apple banana"},  # (1 + 1/2) * (0.5 * 2/3 + 0.5)
            {"_id": 4, "text": "Café"},  # its term `cafe` is not its bytes: no boost
            {"_id": 5, "text": "CAKE"},  # the same bytes but for ASCII case: boosted
        ]
    )
    assert await score_of(notes, "cake") == {1: 0.75, 2: pytest.approx(1.1), 5: pytest.approx(1.1)}
    assert await score_of(notes, "apple") == {3: pytest.approx(1.25)}
    assert await score_of(notes, "café") == {4: 1.0}


@pytest.mark.parametrize("text, language, search, hit", TOKENIZER_CASES)
async def test_the_tokenizers_cases(database: Database, text: str, language: str, search: str, hit: bool) -> None:
    notes = database.handle["notes"]
    await notes.create_index([("text", "text")], default_language=language)
    await notes.insert_one({"_id": 1, "text": text})
    assert await matching(notes, search) == ({1} if hit else set())


def test_mongodbs_order_stems_before_folding() -> None:
    assert terms("mangées", "french") == ["mang"]  # folded first, it would stem to "mange"
    assert terms("Ünïcødé-Text") == ["unicøde", "text"]  # ø has no decomposition: it stays
    assert words("Ünïcødé-Text") == ["ünïcødé", "text"]  # stop words are checked with diacritics


def test_delimiters_are_unicodes_classes() -> None:
    assert words("a\u00a0b\u2014c\u2019d\u00abe\u00bb f\u3002g x_y", "french") == [
        "a",  # no-break space (White_Space)
        "b",  # em dash (Dash)
        "c",  # right single quotation mark (Quotation_Mark), in English too
        "d",
        "e",  # guillemets (Quotation_Mark)
        "f",  # ideographic full stop (Terminal_Punctuation)
        "g",
        "x_y",  # connector punctuation is no delimiter
    ]
    assert words("it's 3.5 a+b (c) #d @e", "english") == ["it's", "3", "5", "a", "b", "c", "d", "e"]
    assert words("İSTANBUL ILIK", "turkish") == ["istanbul", "ılık"]


def test_a_text_of_seventy_thousand_code_points_leaves_the_tables_bounded() -> None:
    text = "".join(map(chr, range(0x20000, 0x20000 + 70_000)))  # ideographs and unassigned: no delimiter
    assert words(text, "french") == words(text, "french") == [text]
    assert len(codepoints._WORD_CHARS["other"]) <= codepoints._TABLE_LIMIT


def test_the_query_parser_follows_mongodbs_rules() -> None:
    query = parse_text_query('a\tb "x y"-"z w" -q"r s" -m-n - o')
    assert query.words == ("a\tb", "x", "y", "z", "w", "o")  # a tab is no white space to the parser
    assert query.phrases == ("x y", "z w")  # `-` right after a phrase negates nothing
    assert query.negated_words == ("q", "m", "n")
    assert query.negated_phrases == ("r s",)
    assert parse_text_query('"unfinished phrase').words == ("unfinished", "phrase")
    assert parse_text_query('"unfinished phrase').phrases == ()


def test_phrases_are_case_and_diacritic_insensitive_substrings() -> None:
    stored = FoldedTexts(["Coffee Shopping", "Crème brûlée", "the front-door", "front,  door"])
    assert stored.hold("coffee shop") and stored.hold("CREME BRULEE")
    assert not stored.hold("front door")
    assert FoldedTexts(["IŞIK"], "turkish").hold("ışık") and not FoldedTexts(["IŞIK"]).hold("ışık")
    assert fold("e\u0301te\u0301") == "ete"  # combining marks are diacritics too


# Through /search


async def test_the_articles_through_search(client: httpx.AsyncClient) -> None:
    for article in ARTICLES:
        await insert_completed_video(transcript_of(article["subject"]), f"{article['_id']}.mp4")
    for search, options, expected in MANUAL_EXAMPLES:
        if not options:  # /search asks in the index's default language
            assert {int(name[0]) for name in await found(client, search)} == expected, search
    [hit] = (await client.get("/search", params={"q": '"coffee shop"'})).json()["items"]
    assert [moment["text"] for moment in hit["matches"]] == ["Coffee Shopping."]
    [hit] = (await client.get("/search", params={"q": "cake"})).json()["items"]
    assert hit["score"] == 0.75


async def test_scores_through_search(client: httpx.AsyncClient) -> None:
    for text, filename in (("Cake", "1.mp4"), ("Café", "2.mp4"), ("apple apple banana", "3.mp4")):
        segments = [Segment(start=0.0, end=1.0, text=text)]
        await insert_completed_video(Transcript(language="en", text=text, segments=segments), filename)
    scores = {}
    for query in ("cake", "café", "apple"):
        for hit in (await client.get("/search", params={"q": query})).json()["items"]:
            scores[hit["video"]["filename"]] = hit["score"]
    assert scores == {"1.mp4": 1.1, "2.mp4": 1.0, "3.mp4": 1.25}  # the whole-string boost: Cake, not Café


async def test_the_tokenizers_cases_through_search(client: httpx.AsyncClient) -> None:
    await insert_completed_video(transcript_of("The front-door. A snake_case name. O'Neill spoke."), "en.mp4")
    await insert_completed_video(transcript_of("Il pèle l'orange. Les pommes mangées.", "fr"), "fr.mp4")
    await insert_completed_video(transcript_of("El sol y el mar.", "es"), "es.mp4")
    await insert_completed_video(transcript_of("Der Hund und die Katze.", "de"), "de.mp4")
    assert await found(client, '"front door"') == []
    assert await found(client, "front door") == ["en.mp4"]
    assert await found(client, "snake_case") == ["en.mp4"]
    assert await found(client, "snake") == []
    assert await found(client, "o'neill") == ["en.mp4"]
    assert await found(client, "neill") == []
    assert await found(client, "orange") == ["fr.mp4"], "the French apostrophe cuts l'orange"
    assert await found(client, "mang") == ["fr.mp4"], "mangées stems to mang before its accent goes"
    assert await found(client, "el y") == [] and await found(client, "sol") == ["es.mp4"]
    assert await found(client, "und die") == [] and await found(client, "hund") == ["de.mp4"]
    [hit] = (await client.get("/search", params={"q": "mang"})).json()["items"]
    assert [moment["text"] for moment in hit["matches"]] == ["Les pommes mangées."]


async def test_a_phrase_running_into_the_next_segments_has_its_moment(client: httpx.AsyncClient) -> None:
    segments = [
        Segment(start=0.0, end=2.0, text="We met at the old"),
        Segment(start=2.0, end=3.0, text="light"),
        Segment(start=3.0, end=6.0, text="house, said the Keeper."),
    ]
    transcript = Transcript(language="en", text=" ".join(s.text for s in segments), segments=segments)
    await insert_completed_video(transcript, "split.mp4")
    [hit] = (await client.get("/search", params={"q": '"OLD LIGHT HOUSE"'})).json()["items"]
    assert [moment["start"] for moment in hit["matches"]] == [0.0, 2.0, 3.0]  # begins in the first
    [hit] = (await client.get("/search", params={"q": '"house, said"'})).json()["items"]
    assert hit["matches"][0]["start"] == 3.0


VOCABULARY = (
    "front-door front door Door snake_case snake O'Neill neill Café cafe coffee shop Shopping the and "
    "running runs l'orange orange 12 3.5 “quoted” quoted"
).split()


async def test_every_hit_through_the_transcript_has_a_moment(client: httpx.AsyncClient) -> None:
    rng = random.Random(7)
    for number in range(12):
        segments = [
            Segment(start=float(i), end=float(i + 1), text=" ".join(rng.choices(VOCABULARY, k=rng.randint(1, 4))))
            for i in range(rng.randint(1, 6))
        ]
        transcript = Transcript(language="en", text=" ".join(s.text for s in segments), segments=segments)
        await insert_completed_video(transcript, f"v{number}.mp4")
    for _ in range(60):
        parts = rng.choices(VOCABULARY, k=rng.randint(1, 2))
        if rng.random() < 0.5:
            parts.append('"' + " ".join(rng.choices(VOCABULARY, k=2)) + '"')
        items = (await client.get("/search", params={"q": " ".join(parts), "limit": 20})).json()["items"]
        for hit in items:
            assert hit["matches"], (parts, hit["video"]["filename"])
