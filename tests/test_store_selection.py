"""The suite's choice of store (tests/store.py), checked without a MongoDB server: pytest runs of
small test files, the plugin as the suite loads it, and mongomock (the embedded store's query
engine) standing in for the server's client where a run needs one."""

import re
from pathlib import Path

import mongomock
import pytest

from service.config import Settings
from tests.server import free_port
from tests.store import MongoDBServer, StoreDatabase

REPO = Path(__file__).resolve().parent.parent
STAND_IN_URL = "mongodb://ops:hunter2@mongodb.example:27017"

ON_A_SERVER = """
import pytest


def record(stores, store):
    stores.client[store.name]["videos"].insert_one({"filename": "a.mp4"})
    stores.client["seen"]["databases"].insert_one({"name": store.name, "settings": store.settings})


def test_one(stores, store):
    record(stores, store)


@pytest.mark.parametrize("case", ["a/b", "C.d"])
def test_two(stores, store, case):
    record(stores, store)


def test_that_fails(stores, store):
    record(stores, store)
    raise AssertionError("a failing test's database is dropped too")


@pytest.mark.embedded_only
def test_of_the_embedded_store(store):
    raise AssertionError("never runs on a server")
"""


@pytest.fixture(autouse=True)
def the_plugin_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pytest runs below load tests/store.py (`-p`) and no installed plugin."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_on_a_server_each_test_gets_a_database_of_its_own_dropped_after_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = mongomock.MongoClient()
    monkeypatch.setattr(MongoDBServer, "reach", classmethod(lambda cls, url: cls(url, engine, "8.0.4")))
    pytester.makepyfile(ON_A_SERVER)
    result = pytester.runpytest_inprocess("-p", "tests.store", "-ra", "--mongodb-url", STAND_IN_URL)

    result.assert_outcomes(passed=3, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "store: MongoDB 8.0.4 at mongodb://ops:***@mongodb.example:27017 (a database of its own for each test, *",
            "SKIPPED * about the embedded store itself; it runs without --mongodb-url",
        ]
    )
    assert "hunter2" not in result.stdout.str()
    assert engine.list_database_names() == ["seen"]
    seen = list(engine["seen"]["databases"].find({}, {"_id": 0}))
    names = [database["name"] for database in seen]
    assert len(set(names)) == 4
    assert all(re.fullmatch(r"test_[a-z0-9_]+_[0-9a-f]{12}", name) and len(name) <= 63 for name in names)
    assert all(
        database["settings"] == {"mongodb_url": STAND_IN_URL, "mongodb_db": database["name"]} for database in seen
    )


@pytest.mark.parametrize(
    ("label", "readable"),
    [
        ("test_two[C.d/é $x]", "test_test_two_c_d_x"),
        (
            "test_every_route[GET /videos/{id}/transcript?format=srt]",
            "test_test_every_route_get_videos_id_transcript_for",
        ),
    ],
)
def test_database_names_fit_mongodbs_rules_whatever_the_test_is_called(label: str, readable: str) -> None:
    """At most 63 bytes, none of `/\\. "$*<>:|?`, lower case (names differing in case clash)."""
    server = MongoDBServer(STAND_IN_URL, mongomock.MongoClient(), "8.0.4")
    with server.database(label) as first, server.database(label) as second:
        assert re.fullmatch(readable + "_[0-9a-f]{12}", first.name) and len(first.name) <= 63
        assert second.name != first.name


def test_an_unreachable_server_stops_the_run_at_once_with_one_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = pytester.path / "ran"
    pytester.makepyfile(f"def test_anything():\n    open({str(ran)!r}, 'w').close()\n")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    url = f"mongodb://ops:hunter2@127.0.0.1:{free_port()}"
    result = pytester.runpytest_subprocess("-p", "tests.store", "--mongodb-url", url, timeout=120)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    [message] = [line for line in result.stderr.lines if line.strip()]
    assert message.startswith(
        f"ERROR: --mongodb-url {url.replace('hunter2', '***')}: no MongoDB server answered within 2 s"
    )
    assert "Connection refused" in message
    assert not ran.exists()


def test_without_a_server_the_header_names_the_embedded_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_store(store):\n    assert store.mongodb_url is None\n")
    result = pytester.runpytest_inprocess("-p", "tests.store")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["store: embedded (a store of its own in each test's tmp_path; *"])


@pytest.mark.embedded_only
def test_the_embedded_run_stays_embedded_whatever_the_environment_says(
    store: StoreDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://production.example:27017")
    assert Settings(_env_file=None, **store.settings).uses_embedded_store
