"""Choosing the language model, and summarizing a video with it."""

import logging

import service.ai.providers  # noqa: F401 - registers every provider
from service.ai.languages import output_language
from service.ai.providers.base import LanguageModel
from service.ai.schemas import SummarizeOptions, SummaryRequest
from service.clock import utc_now
from service.config import Settings
from service.errors import NotFound
from service.observability.metrics import language_model_call
from service.users.models import User
from service.videos.models import Summary, Video
from service.videos.service import ensure_owner, get_completed_video

logger = logging.getLogger(__name__)


def create_language_model(settings: Settings) -> LanguageModel:
    """The provider LLM_PROVIDER names (auto: openai when configured, else local); one per process."""
    provider = LanguageModel.registry[settings.language_model_provider](settings)
    logger.info("language model: %s provider, model %s", provider.name, provider.model)
    return provider


async def summarize(video: Video, language_model: LanguageModel) -> Summary:
    """A summary in the video's summary language (the transcript's when it has none)."""
    transcript = video.transcript
    language = video.summary_language or transcript.language
    request = SummaryRequest(
        title=video.filename,
        language=language,
        transcript_language=transcript.language,
        segments=transcript.timed_segments(video.metadata.duration),
    )
    with language_model_call(language_model.name, "summary"):
        draft = await language_model.summarize(request)
    return Summary(
        text=draft.text,
        key_points=draft.key_points,
        chapters=draft.chapters,
        model=language_model.model,
        language=draft.language or language,
        note=draft.note,
    )


async def resummarize(
    raw_id: str, viewer: User | None, language_model: LanguageModel, options: SummarizeOptions | None
) -> Summary:
    """A new summary for a completed video, in `summary_language` when given (kept with the video
    for later summaries and answers); a provider failure leaves the stored one as it was."""
    video = await get_completed_video(raw_id, viewer, "it can be summarized")
    ensure_owner(video, viewer)
    chosen = output_language(options.summary_language, "summary_language") if options else None
    video.summary_language = chosen or video.summary_language
    summary = await summarize(video, language_model)
    changes = {"summary": summary.model_dump(), "summary_language": video.summary_language, "updated_at": utc_now()}
    result = await Video.get_motor_collection().update_one({"_id": video.id}, {"$set": changes})
    if result.matched_count == 0:
        raise NotFound(f"video {video.id} was deleted while it was summarized")
    return summary
