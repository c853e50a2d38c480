"""Slowing down password guessing, per username and per client address, safely under concurrency.

A password check is granted by one atomic `find_one_and_update` that counts the attempt before
the (slow) check runs, and only while the key has checks left and is not locked: fifty wrong
passwords sent at once get at most `limit` checks between them. The attempt after the limit locks
the key, for 30 seconds doubling with each lock up to 15 minutes (long enough that a burst of
guesses ends inside it), and leaves it one check for when the lock ends. A record expires an hour after its last attempt (a TTL index), which is how
old failures are forgotten.

The grant's filter holds the conditions, with `upsert`: on a key that exists but has no check left
(or is locked), MongoDB, like the embedded store, tries to insert a second document with that
`_id` and answers E11000, which here means "not granted".
"""

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from service.clock import utc_now
from service.errors import TooManyAttempts
from service.users.models import LoginThrottle

FIRST_LOCK_SECONDS = 30
MAX_LOCK_SECONDS = 15 * 60
FAILURE_WINDOW = timedelta(hours=1)


def _collection() -> Any:
    return LoginThrottle.get_motor_collection()


def _unlocked(now: datetime) -> dict[str, Any]:
    return {"$or": [{"locked_until": None}, {"locked_until": {"$lte": now}}]}


async def grant_check(key: str, limit: int) -> None:
    """Count one attempt for `key` and grant its password check; TooManyAttempts when none is left."""
    now = utc_now()
    counted = {"$inc": {"attempts": 1}, "$set": {"expires_at": now + FAILURE_WINDOW}}
    for _ in range(2):  # a second try when a concurrent first attempt inserted the record first
        try:
            await _collection().find_one_and_update(
                {"_id": key, "attempts": {"$lt": limit}, **_unlocked(now)}, counted, upsert=True
            )
            return
        except DuplicateKeyError:
            pass
        locked_until = await _lock_if_spent(key, limit, now)
        if locked_until is not None:
            _refuse(locked_until, now)
    _refuse(now, now)


async def _lock_if_spent(key: str, limit: int, now: datetime) -> datetime | None:
    """Lock a key whose checks are spent (returning when the lock ends), or return the lock in
    force; None when the key has checks left after all (a race with its creation)."""
    locking = await _collection().find_one_and_update(
        {"_id": key, "attempts": {"$gte": limit}, **_unlocked(now)},
        {
            "$inc": {"locks": 1},
            "$set": {
                "attempts": limit - 1,
                "locked_until": now + timedelta(seconds=MAX_LOCK_SECONDS),
                "expires_at": now + FAILURE_WINDOW,
            },
        },
        return_document=ReturnDocument.AFTER,
    )
    if locking is not None:  # locked at once for the longest time, then shortened to this lock's turn
        until = now + timedelta(seconds=min(FIRST_LOCK_SECONDS * 2 ** (locking["locks"] - 1), MAX_LOCK_SECONDS))
        await _collection().update_one({"_id": key}, {"$set": {"locked_until": until}})
        return until
    current = await _collection().find_one({"_id": key})
    if current is not None and current.get("locked_until") and current["locked_until"] > now:
        return current["locked_until"]
    return None


def _refuse(locked_until: datetime, now: datetime) -> None:
    wait = int((locked_until - now).total_seconds()) + 1
    raise TooManyAttempts(f"too many failed logins; try again in {wait} s", retry_after=wait)


async def forget(key: str) -> None:
    """A successful login clears its username's record."""
    await _collection().delete_one({"_id": key})


async def give_back(key: str) -> None:
    """A successful login does not count against its address."""
    await _collection().update_one({"_id": key, "attempts": {"$gt": 0}}, {"$inc": {"attempts": -1}})
