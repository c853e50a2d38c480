"""The service's Prometheus metrics and the helpers that observe them.

They live on prometheus_client's default registry, beside its process and Python collectors.
Every label takes values from a small set the code fixes (route templates, known methods,
statuses, provider names, exception classes), never from raw client input, so that no client can
grow the number of series.
"""

import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Literal, get_args

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric

from service.ai.schemas import AnswerDraft
from service.processing.schemas import QueueDepth

UNMATCHED_ROUTE = "unmatched"
"""The route label of a request answered without reaching a route: an unknown path, or a body
refused by the limits before routing."""
OTHER_METHOD = "OTHER"
"""The method label of a request whose method is none of the known ones (any token is a method)."""
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# No `_created` series beside each counter and histogram: they would double the number of series
# for a time Prometheus does not need (it detects counter resets itself).
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "video_analyzer_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "video_analyzer_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (an event stream: until it ends)",
    ["method", "route"],
)
TRANSCRIPTION_SECONDS = Histogram(
    "video_analyzer_transcription_seconds",
    "Wall-clock seconds a worker spent transcribing one video (decoding its audio included)",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
TRANSCRIPTION_REAL_TIME_FACTOR = Histogram(
    "video_analyzer_transcription_real_time_factor",
    "Transcription seconds per second of media (below 1: faster than real time)",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
)
LANGUAGE_MODEL_SECONDS = Histogram(
    "video_analyzer_language_model_seconds",
    "Seconds a summary or an answer took from the language model, failures included "
    "(a streamed answer: until the finished answer arrived)",
    ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
LANGUAGE_MODEL_FAILURES = Counter(
    "video_analyzer_language_model_failures",
    "Summaries and answers the language model failed to give, by the error's class",
    ["provider", "operation", "error"],
)

WebhookOutcome = Literal["delivered", "rejected", "unreachable", "refused"]
WEBHOOK_DELIVERIES = Counter(
    "video_analyzer_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered (a 2xx answer), rejected (any other status), "
    "unreachable (no answer: DNS, connection, TLS or timeout), refused (the receiver's address is not public)",
    ["outcome"],
)
WEBHOOK_ABANDONED = Counter(
    "video_analyzer_webhook_deliveries_abandoned",
    "Webhook deliveries given up: still failing when their retry window (WEBHOOK_RETRY_HOURS) ended",
)
for _outcome in get_args(WebhookOutcome):
    WEBHOOK_DELIVERIES.labels(_outcome)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in KNOWN_METHODS else OTHER_METHOD
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_REQUEST_SECONDS.labels(method, route).observe(seconds)


def observe_transcription(seconds: float, media_seconds: float | None) -> None:
    """One video transcribed; its real-time factor only when its duration is known."""
    TRANSCRIPTION_SECONDS.observe(seconds)
    if media_seconds:
        TRANSCRIPTION_REAL_TIME_FACTOR.observe(seconds / media_seconds)


def observe_webhook_attempt(outcome: WebhookOutcome) -> None:
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def observe_webhook_abandoned() -> None:
    WEBHOOK_ABANDONED.inc()


class LanguageModelCall:
    """One summary or answer asked of the language model, timed once, when `finish` is first called."""

    def __init__(self, provider: str, operation: str) -> None:
        self.labels = (provider, operation)
        self.started = time.perf_counter()
        self.timed = False

    def finish(self) -> None:
        if not self.timed:
            self.timed = True
            LANGUAGE_MODEL_SECONDS.labels(*self.labels).observe(time.perf_counter() - self.started)


@contextmanager
def language_model_call(provider: str, operation: str) -> Iterator[LanguageModelCall]:
    """Times the call made inside the block, and counts it as failed when it raises. A call
    cancelled (its client gone, the service stopping) is neither: it did not finish."""
    call = LanguageModelCall(provider, operation)
    try:
        yield call
    except Exception as error:
        LANGUAGE_MODEL_FAILURES.labels(provider, operation, error.__class__.__name__).inc()
        call.finish()
        raise
    call.finish()


async def measured_answer_stream(
    provider: str, stream: AsyncIterator[str | AnswerDraft]
) -> AsyncIterator[str | AnswerDraft]:
    """A streamed answer passed through, timed until its finished AnswerDraft arrives."""
    with language_model_call(provider, "answer") as call:
        async for item in stream:
            if isinstance(item, AnswerDraft):
                call.finish()
            yield item


def queue_families(depth: QueueDepth | None) -> Iterator[Metric]:
    """The queue as one scrape read it from the store; `None`: the store did not answer."""
    yield GaugeMetricFamily(
        "video_analyzer_store_up",
        "1 when this scrape read the queue from the store, 0 when the store did not answer in time",
        value=0 if depth is None else 1,
    )
    if depth is None:
        return
    yield GaugeMetricFamily(
        "video_analyzer_queue_depth",
        "Videos queued for processing (retries waiting out a backoff included)",
        value=depth.queued,
    )
    yield GaugeMetricFamily("video_analyzer_queue_processing", "Videos a worker is processing", value=depth.processing)
    yield GaugeMetricFamily(
        "video_analyzer_queue_oldest_age_seconds",
        "Seconds the longest-waiting queued video has waited since it was queued (0 when none is)",
        value=depth.oldest_queued_age_seconds,
    )


class Scrape:
    """What one scrape shows: this process's metrics, then the queue as read from the store just
    before. A collector for prometheus_client's encoders, which call `collect` synchronously: the
    store read is done, asynchronously, before it is made."""

    def __init__(self, depth: QueueDepth | None) -> None:
        self.depth = depth

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        yield from queue_families(self.depth)
