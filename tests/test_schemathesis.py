"""Schemathesis over the ASGI app: requests generated from the OpenAPI description for every
operation, with users off and on. No answer is a server error, every answer matches its documented
schema and content type, and every status is documented.

Half the generated video ids name a stored, completed video with a real file and half the uploads
carry a small real video, so that answers of success are checked as well as refusals.
"""

import asyncio
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema

from service.config import Settings
from service.db.service import connect
from service.main import create_app
from service.users import security
from service.users.schemas import Registration
from service.users.service import register
from service.videos.models import Video
from tests.conftest import NO_AUDIO_VIDEO, SHORT_TRANSCRIPT, insert_completed_video
from tests.store import StoreDatabase

SECRET = "s" * 48
CHECKS = ["not_a_server_error", "status_code_conformance", "response_schema_conformance", "content_type_conformance"]
MAX_EXAMPLES = 40
"""Per operation, for fuzzing; the schema's examples and the coverage phase's boundary cases come on top."""
OPENAI_AUDIO_PATHS = "/v1/audio/"
"""No workers run here, so a valid upload there waits OPENAI_API_WAIT_SECONDS and is answered 504
(documented); any other server error still fails."""
OWN_VIDEO = ("DELETE /videos/{video_id}", "POST /videos/{video_id}/reprocess")
"""Operations that take a video from the others (deleted, queued again): each gets a seeded video of its own."""


def _config(bearer: str | None) -> SchemathesisConfig:
    settings: dict[str, Any] = {
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "no-shrink": True,
            "database": "none",
            # Credentials come from `auth` below; generated ones would only be refused (401).
            "with-security-parameters": False,
        },
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        # A queued video's event stream only ends with its processing (no workers run here).
        "max-stream-events": 1,
        "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
    }
    if bearer is not None:
        settings["auth"] = {"openapi": {"OAuth2PasswordBearer": {"bearer": bearer}}}
    return SchemathesisConfig.from_dict(settings)


async def _seed(settings: Settings) -> tuple[str | None, list[str]]:
    """Before the app starts (as `video-analyzer create-user` would): an admin when users are on,
    and completed videos, one shared and one per OWN_VIDEO operation. Returns the admin's token
    and the videos' ids."""
    database = await connect(settings)
    try:
        admin = None
        if settings.auth_enabled:
            registration = Registration(
                username="admin", email="admin@example.com", password="admin-password-1", is_admin=True
            )
            admin = await register(settings, registration)
        videos = [await insert_completed_video(SHORT_TRANSCRIPT, f"seeded-{n}.mp4") for n in range(1 + len(OWN_VIDEO))]
        for video in videos:
            await _store_file(settings, video)
    finally:
        database.close()
    token = None if admin is None else security.create_access_token(str(admin.id), admin.token_version, SECRET, 60)
    return token, [str(video.id) for video in videos]


async def _store_file(settings: Settings, video: Video) -> None:
    """A real file for the seeded video, so that its media and thumbnail are answered too."""
    key = str(video.id)
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    (settings.files_dir / key).write_bytes(NO_AUDIO_VIDEO.read_bytes())
    facts = {"file.key": key, "file.size": NO_AUDIO_VIDEO.stat().st_size, "file.content_type": "video/mp4"}
    metadata = {"metadata.duration": 3.0, "metadata.video": {"codec": "h264", "width": 160, "height": 120}}
    await Video.get_motor_collection().update_one({"_id": video.id}, {"$set": {**facts, **metadata}})


def _use_seeded(api: BaseSchema, shared: str, own: dict[str, str]) -> None:
    """Half the video ids, in the path or in a legacy body, name a seeded video; half the uploads
    carry a real video."""
    media = NO_AUDIO_VIDEO.read_bytes()

    @api.hook
    def flatmap_path_parameters(context: schemathesis.HookContext, parameters: dict[str, Any]) -> Any:
        if not parameters or "video_id" not in parameters:
            return st.just(parameters)
        seeded = own.get(context.operation.label, shared)
        return st.sampled_from([parameters, {**parameters, "video_id": seeded}])

    @api.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> Any:
        if isinstance(body, dict) and "file" in body:
            return st.sampled_from([body, {**body, "file": media}])
        if isinstance(body, dict) and "video_id" in body:
            return st.sampled_from([body, {**body, "video_id": shared}])
        return st.just(body)


@pytest.fixture(params=["users-off", "users-on"])
def api(request: pytest.FixtureRequest, tmp_path: Path, store: StoreDatabase) -> BaseSchema:
    # Schemathesis 4.32's lazy loader renames the test node through `_nodeid`, which pytest 9.2's nodes no longer have.
    request.node._nodeid = request.node.nodeid
    users = request.param == "users-on"
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        workers=0,
        max_upload_mb=1,
        openai_api_wait_seconds=0.1,
        auth_enabled=users,
        secret_key=SECRET if users else None,
        **store.settings,
    )
    bearer, (shared, *own) = asyncio.run(_seed(settings))
    credentials = {"headers": {"Authorization": f"Bearer {bearer}"}} if bearer else {}  # the docs need a user
    loaded = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(settings), config=_config(bearer), **credentials
    )
    _use_seeded(loaded, shared, dict(zip(OWN_VIDEO, own, strict=True)))
    return loaded


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
def test_generated_requests(case: schemathesis.Case) -> None:
    if not case.path.startswith(OPENAI_AUDIO_PATHS):
        case.call_and_validate()
        return
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    assert response.status_code < 500 or response.status_code == 504, response.text
