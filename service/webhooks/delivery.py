"""Delivering webhooks: from the videos' outboxes to one delivery per receiver, then each one
claimed under a lease, signed, sent, and retried with exponential backoff for WEBHOOK_RETRY_HOURS.

Every process that serves the API or runs workers runs one Dispatcher with one httpx client.
A delivery is claimed with one atomic find_one_and_update that moves its `next_attempt_at` to the
end of a lease longer than an attempt can last, so that two nodes never send the same attempt at
once; a node that dies mid-attempt loses nothing: the lease runs out and the delivery is due again.
"""

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpcore
import httpx
from beanie import PydanticObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from service import __version__
from service.clock import utc_now
from service.config import Settings
from service.http.retry_after import retry_after_seconds
from service.observability.metrics import WebhookOutcome, observe_webhook_abandoned, observe_webhook_attempt
from service.processing import queue
from service.videos.models import Video
from service.webhooks import events
from service.webhooks.addresses import AddressRefused, HostUnresolved, public_addresses
from service.webhooks.models import (
    GONE_REASON,
    KEPT_ATTEMPTS,
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from service.webhooks.service import (
    OWNER_INACTIVE_REASON,
    disable,
    ended,
    ended_status,
    is_deactivated_user,
    log_expiry,
)
from service.webhooks.signing import secret_bytes, signed_headers

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 30.0
"""A claim outlasts the longest attempt (WEBHOOK_TIMEOUT_SECONDS) by this much."""
RELAY_BATCH = 100
MAX_BACKOFF_EXPONENT = 60
MAX_ERROR_CHARS = 300
EMBEDDED_LOOK_SECONDS = 3600.0
"""How often a dispatcher on the embedded store looks at every outbox and for due deliveries. No
other process writes that store, so this process's announcements tell of every event and its own
records of every retry; what a crash left behind is found at start-up. The look is a safety net."""
USER_AGENT = f"video-analyzer/{__version__}"
ASKS_TO_WAIT = (429, 503)
"""Statuses whose Retry-After is heeded (RFC 6585, RFC 9110)."""
GONE = 410
"""The Standard Webhooks specification: the receiver wants no more; the sender disables it."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, opening each connection only to an address it has just resolved
    and found public (addresses.py): the check and the connection use the same resolution, so a
    name that DNS points elsewhere in between cannot reach an internal address. TLS still checks
    the certificate against the host name (httpcore passes it as the SNI name)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, resolve_timeout: float) -> None:
        self.inner = inner
        self.resolve_timeout = resolve_timeout

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await public_addresses(host, port, self.resolve_timeout):
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure or httpcore.ConnectError(f"no address for {host}")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def webhook_client(settings: Settings) -> httpx.AsyncClient:
    """The process's one client for deliveries: WEBHOOK_TIMEOUT_SECONDS on every phase, no
    redirects followed (a redirect could lead anywhere), no proxy from the environment (it would
    connect in our place, unchecked), and with WEBHOOK_ALLOW_PRIVATE=false the GuardedBackend.
    httpx 0.28 takes no network backend of its own, so the one of its transport's httpcore pool is
    wrapped in place."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    if not settings.webhook_allow_private:
        pool = transport._pool
        pool._network_backend = GuardedBackend(pool._network_backend, settings.webhook_timeout_seconds)
    return httpx.AsyncClient(
        transport=transport,
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT, "content-type": "application/json"},
    )


def payload(event: WebhookEvent) -> str:
    """The body every receiver gets for `event`, as signed: `{"type", "timestamp", "data"}`."""
    document = {"type": event.type, "timestamp": events.iso(event.at), "data": event.data}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


async def relay(settings: Settings, video_filter: dict[str, Any]) -> int:
    """Hand each pending event of the videos matching `video_filter` to one delivery per receiver,
    then take it out of the outbox; returns how many videos had events.

    Idempotent (one delivery per event and receiver, a unique index), so a crash between the two
    steps, or two nodes relaying the same video at once, send nothing twice."""
    videos = Video.get_motor_collection()
    found = await (
        videos.find({**video_filter, **events.HAS_PENDING_EVENTS}, {"owner_id": 1, events.OUTBOX_FIELD: 1})
        .limit(RELAY_BATCH)
        .to_list(None)
    )
    for document in found:
        relayed = [WebhookEvent.model_validate(entry) for entry in document[events.OUTBOX_FIELD]]
        for event in relayed:
            await _fan_out(settings, event, document.get("owner_id"))
        taken = {"$pull": {events.OUTBOX_FIELD: {"id": {"$in": [event.id for event in relayed]}}}}
        await videos.update_one({"_id": document["_id"]}, taken)
    return len(found)


async def _fan_out(settings: Settings, event: WebhookEvent, owner_id: PydanticObjectId | None) -> None:
    """One delivery of `event` to each receiver that was listening for it when it happened: the
    owner's enabled subscriptions to its type, and WEBHOOK_URL."""
    subscribed = WebhookSubscription.find(
        {"owner_id": owner_id, "event_types": event.type, "created_at": {"$lte": event.at}, "disabled_at": None}
    )
    receivers: list[PydanticObjectId | None] = [subscription.id for subscription in await subscribed.to_list()]
    if settings.webhook_url is not None:
        receivers.append(None)
    fields = WebhookDelivery(
        message_id=event.id,
        owner_id=owner_id,
        type=event.type,
        body=payload(event),
        created_at=event.at,
        next_attempt_at=event.at,
    ).model_dump(exclude={"id", "message_id", "subscription_id"})
    for receiver in receivers:
        try:
            await WebhookDelivery.get_motor_collection().update_one(
                {"message_id": event.id, "subscription_id": receiver}, {"$setOnInsert": fields}, upsert=True
            )
        except DuplicateKeyError:
            pass  # another node inserted it between our match and our insert


async def take_back() -> None:
    """Make due at once every delivery left claimed: only for a store that no other process can
    use (the embedded store), where the previous process died holding them."""
    result = await WebhookDelivery.get_motor_collection().update_many(
        {"status": "pending", "leased_by": {"$ne": None}}, {"$set": {"leased_by": None, "next_attempt_at": utc_now()}}
    )
    if result.modified_count:
        logger.info("webhooks: took back %d delivery attempt(s) the previous process left", result.modified_count)


def _describe(error: BaseException) -> str:
    text = str(error) or error.__class__.__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _first_cause(error: BaseException) -> BaseException:
    """The first error an exception group holds (the network library's task groups wrap them),
    which says more in a delivery log than the group does."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


class Unsent(NamedTuple):
    """How a delivery ends that is not to be sent at all."""

    status: DeliveryStatus
    reason: str


SenderGroup = tuple[bool, PydanticObjectId | None]
"""Whose receiver an attempt goes to: (True, None) for WEBHOOK_URL, (False, owner) for a user's."""


def _sender_group(delivery: WebhookDelivery) -> SenderGroup:
    return (True, None) if delivery.subscription_id is None else (False, delivery.owner_id)


class Dispatcher:
    """This process's deliveries: relays outboxes and sends what is due, WEBHOOK_CONCURRENCY at
    once (another user's due deliveries first, once one user's receivers have WEBHOOK_USER_CONCURRENCY);
    woken at once by an event raised in this process (whose video alone it then relays), and
    when the next retry is due. At start-up, and on MongoDB every WEBHOOK_POLL_SECONDS, it relays
    every outbox and looks for due deliveries: the events and retries of other processes, or those
    a process left behind when it died."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = queue.worker_name("webhooks")
        self._wake = asyncio.Event()
        self._raised: set[PydanticObjectId] = set()
        self._next_full_relay = 0.0
        self._look_every = EMBEDDED_LOOK_SECONDS if settings.uses_embedded_store else settings.webhook_poll_seconds
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)
        self._in_flight: Counter[SenderGroup] = Counter()
        """Attempts running now, by sender group. A group past WEBHOOK_USER_CONCURRENCY gets a slot
        only when no other group has a delivery due, so that one user's receivers hanging until the
        timeout hold another user's delivery back one attempt's time at most, not round upon round."""
        self._sending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._unlisten = lambda: None
        self._receivers = {} if settings.webhook_url is not None else {"subscription_id": {"$ne": None}}
        """A node without WEBHOOK_URL leaves the global receiver's deliveries to nodes with it."""

    def start(self) -> None:
        self._client = webhook_client(self.settings)
        self._unlisten = events.listen(self._raised_in)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sending; an attempt cut short is handed back, due at once, to be sent again."""
        self._unlisten()
        tasks = [task for task in (self._task, *self._sending) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def _raised_in(self, video_id: PydanticObjectId) -> None:
        self._raised.add(video_id)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self._round()
            except Exception:
                logger.exception("webhooks: a delivery round failed; trying again shortly")
                wait = self.settings.webhook_poll_seconds
            try:  # not asyncio.wait_for: on Python 3.11 it loses a cancellation that meets a wake-up
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _round(self) -> float:
        """Relay the outboxes, start every due attempt there is a slot for; returns the seconds to
        wait before the next round (unless woken)."""
        await self._relay()
        while True:
            await self._slots.acquire()
            try:
                delivery = await self._claim_fairly()
            except BaseException:
                self._slots.release()
                raise
            if delivery is None:
                self._slots.release()
                return await self._seconds_until_due()
            self._in_flight[_sender_group(delivery)] += 1
            task = asyncio.create_task(self._deliver(delivery))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _relay(self) -> None:
        """The outboxes of the videos that raised events here since the last round (found by `_id`,
        no scan), and now and then every outbox. Videos whose relay failed are tried again next round."""
        raised, self._raised = self._raised, set()
        if time.monotonic() >= self._next_full_relay:
            self._next_full_relay = time.monotonic() + self._look_every
            video_filter: dict[str, Any] = {}
        elif raised:
            video_filter = {"_id": {"$in": list(raised)}}
        else:
            return
        try:
            while await relay(self.settings, video_filter) == RELAY_BATCH:
                pass
        except BaseException:
            self._raised |= raised
            raise

    async def _claim_fairly(self) -> WebhookDelivery | None:
        """The next due delivery, one of a sender group with fewer than WEBHOOK_USER_CONCURRENCY
        attempts running when there is one; otherwise any (no slot stays idle while work is due)."""
        full = [
            group for group, running in self._in_flight.items() if running >= self.settings.webhook_user_concurrency
        ]
        if full:
            excluded = [
                {"subscription_id": None} if is_global else {"subscription_id": {"$ne": None}, "owner_id": owner}
                for is_global, owner in full
            ]
            delivery = await self.claim({"$nor": excluded})
            if delivery is not None:
                return delivery
        return await self.claim()

    async def claim(self, among: dict[str, Any] | None = None) -> WebhookDelivery | None:
        """Lease the due delivery (of those matching `among`) that has waited longest."""
        now = utc_now()
        lease = timedelta(seconds=self.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        document = await WebhookDelivery.get_motor_collection().find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}, **self._receivers, **(among or {})},
            {"$set": {"leased_by": self.name, "next_attempt_at": now + lease}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", 1), ("_id", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return None if document is None else WebhookDelivery.model_validate(document)

    async def _seconds_until_due(self) -> float:
        next_due = await WebhookDelivery.get_motor_collection().find_one(
            {"status": "pending", **self._receivers}, {"next_attempt_at": 1}, sort=[("next_attempt_at", 1)]
        )
        if next_due is None:
            return self._look_every
        return min(self._look_every, max(0.0, (next_due["next_attempt_at"] - utc_now()).total_seconds()))

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        """One attempt and its outcome; after a failure, the dispatcher is woken to plan for the
        retry (its wait was reckoned while this delivery was leased)."""
        try:
            endpoint = await self._endpoint(delivery)
            if endpoint is None:  # its subscription was deleted, and its deliveries with it
                await WebhookDelivery.get_motor_collection().delete_one({"_id": delivery.id})
                return
            if isinstance(endpoint, Unsent):
                await self._end_unsent(delivery, endpoint)
                return
            attempt, outcome = await self._attempt(delivery, *endpoint)
            observe_webhook_attempt(outcome)
            await self._record(delivery, attempt)
            if attempt.error is not None:
                self._wake.set()
        except asyncio.CancelledError:
            await self._release(delivery)
            raise
        except Exception:
            logger.exception("webhooks: delivery %s of %s failed unexpectedly", delivery.id, delivery.message_id)
        finally:
            self._slots.release()
            self._in_flight -= Counter([_sender_group(delivery)])

    async def _endpoint(self, delivery: WebhookDelivery) -> tuple[str, bytes] | Unsent | None:
        """Where the delivery goes and the key that signs it, as they are now; why it is not sent
        when its subscription is disabled or its owner deactivated; None when it is gone."""
        if delivery.subscription_id is None:
            assert self.settings.webhook_url is not None and self.settings.webhook_secret is not None
            return self.settings.webhook_url, secret_bytes(self.settings.webhook_secret.get_secret_value())
        subscription = await WebhookSubscription.get(delivery.subscription_id)
        if subscription is None:
            return None
        if subscription.disabled_at is not None:
            reason = subscription.disabled_reason or "the subscription is disabled"
            return Unsent(ended_status(subscription.disabled_by), reason)
        if subscription.owner_id is not None and await is_deactivated_user(subscription.owner_id):
            return Unsent("skipped", OWNER_INACTIVE_REASON)
        return subscription.url, secret_bytes(subscription.secret)

    async def _end_unsent(self, delivery: WebhookDelivery, unsent: Unsent) -> None:
        """End a claimed delivery without an attempt (the claim's is taken back)."""
        fields = ended(self.settings, unsent.status, unsent.reason, utc_now())
        await WebhookDelivery.get_motor_collection().update_one(
            self._held(delivery), {"$set": {**fields, "leased_by": None}, "$inc": {"attempts": -1}}
        )

    async def _attempt(self, delivery: WebhookDelivery, url: str, key: bytes) -> tuple[DeliveryAttempt, WebhookOutcome]:
        """One signed POST; the whole of it, resolving the address included, within WEBHOOK_TIMEOUT_SECONDS."""
        assert self._client is not None
        at = utc_now()
        started = time.perf_counter()
        headers = signed_headers(key, delivery.message_id, int(time.time()), delivery.body)
        status: int | None = None
        retry_after: float | None = None
        outcome: WebhookOutcome
        try:
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                async with self._client.stream("POST", url, content=delivery.body.encode(), headers=headers) as answer:
                    status = answer.status_code
                    if status in ASKS_TO_WAIT:
                        retry_after = retry_after_seconds(answer.headers.get("retry-after"))
            delivered = 200 <= status < 300
            outcome, error = ("delivered", None) if delivered else ("rejected", f"the receiver answered {status}")
        except HostUnresolved as unresolved:
            outcome, error = "unreachable", _describe(unresolved)
        except AddressRefused as refused:
            outcome, error = "refused", f"refused: {_describe(refused)}"
        except TimeoutError:
            timeout = self.settings.webhook_timeout_seconds
            outcome, error = "unreachable", f"no answer within {timeout:g} s (WEBHOOK_TIMEOUT_SECONDS)"
        except (httpx.HTTPError, OSError) as failure:
            outcome, error = "unreachable", f"{failure.__class__.__name__}: {_describe(failure)}"
        except Exception as failure:  # a bug's or a library's: still an attempt, logged, retried with backoff
            logger.exception("webhooks: attempt %d of %s failed unexpectedly", delivery.attempts, delivery.message_id)
            cause = _first_cause(failure)
            outcome, error = "unreachable", f"{cause.__class__.__name__}: {_describe(cause)}"
        seconds = round(time.perf_counter() - started, 4)
        attempt = DeliveryAttempt(at=at, status_code=status, error=error, seconds=seconds, retry_after=retry_after)
        return attempt, outcome

    async def _record(self, delivery: WebhookDelivery, attempt: DeliveryAttempt) -> None:
        """Keep the attempt and what follows from it, if the claim is still this node's."""
        now = utc_now()
        fields: dict[str, Any] = {"leased_by": None}
        gone = attempt.status_code == GONE
        if attempt.error is None:
            fields.update(
                status="delivered", delivered_at=now, next_attempt_at=None, expires_at=log_expiry(self.settings, now)
            )
        elif gone and delivery.subscription_id is not None:
            fields.update(ended(self.settings, "gone", GONE_REASON, now))
        else:
            if gone:
                logger.warning(
                    "webhooks: WEBHOOK_URL answered 410 Gone to %s: the receiver wants no more events, but "
                    "WEBHOOK_URL is the operator's to change, so it is retried as any failure",
                    delivery.message_id,
                )
            next_attempt_at = self.retry_at(delivery, now, attempt.retry_after)
            fields["next_attempt_at"] = next_attempt_at
            if next_attempt_at is None:
                fields.update(status="failed", expires_at=log_expiry(self.settings, now))
                observe_webhook_abandoned()
            level = logging.ERROR if next_attempt_at is None else logging.WARNING
            logger.log(
                level,
                "webhooks: attempt %d of %s to %s failed (%s); %s",
                delivery.attempts,
                delivery.message_id,
                delivery.subscription_id or "WEBHOOK_URL",
                attempt.error,
                "given up" if next_attempt_at is None else f"next at {events.iso(next_attempt_at)}",
            )
        kept = {"$each": [attempt.model_dump()], "$slice": -KEPT_ATTEMPTS}
        await WebhookDelivery.get_motor_collection().update_one(
            self._held(delivery), {"$set": fields, "$push": {"last_attempts": kept}}
        )
        if gone and delivery.subscription_id is not None:
            logger.warning("webhooks: subscription %s answered 410 Gone; it is disabled", delivery.subscription_id)
            await disable(self.settings, delivery.subscription_id, "receiver", GONE_REASON)

    def retry_at(self, delivery: WebhookDelivery, now: datetime, asked: float | None = None) -> datetime | None:
        """After a failed attempt: exponential backoff (WEBHOOK_RETRY_BASE_SECONDS doubling, at
        most WEBHOOK_RETRY_MAX_SECONDS) with jitter (a random half to all of it), so that receivers
        coming back are not met by every retry at once, or the `asked` seconds of the receiver's
        Retry-After when that is later; a last attempt when the retry window ends; None once it has."""
        settings = self.settings
        deadline = delivery.created_at + timedelta(hours=settings.webhook_retry_hours)
        if now >= deadline:
            return None
        exponent = min(delivery.attempts - 1, MAX_BACKOFF_EXPONENT)
        backoff = min(settings.webhook_retry_max_seconds, settings.webhook_retry_base_seconds * 2**exponent)
        wait = max(random.uniform(backoff / 2, backoff), asked or 0.0)
        if (
            wait >= (deadline - now).total_seconds()
        ):  # compared in seconds: a receiver's wait may pass what timedelta holds
            return deadline
        return now + timedelta(seconds=wait)

    def _held(self, delivery: WebhookDelivery) -> dict[str, Any]:
        return {"_id": delivery.id, "leased_by": self.name, "attempts": delivery.attempts}

    async def _release(self, delivery: WebhookDelivery) -> None:
        """Hand back an attempt cut short by a stop; it does not count."""
        await WebhookDelivery.get_motor_collection().update_one(
            self._held(delivery),
            {"$set": {"leased_by": None, "next_attempt_at": utc_now()}, "$inc": {"attempts": -1}},
        )
