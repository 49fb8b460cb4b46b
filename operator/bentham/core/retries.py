"""How many attempts a cell gets, and how long it waits between them.

`maxRetriesPerCell` counts attempts, first try included: 1 is one try and no retry. Before
attempt n+1 the cell waits 1 s, 2 s, 4 s, ... (2^(n-1) s) capped at 60 s, shortened by a
jitter of up to 20% so the cells of a burst do not all come back at once. The jitter comes from
a hash of (study uid, cell index, attempt), not a random source: the core stays pure and the
same failure always schedules the same retry.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from bentham.core.results import Verdict
from bentham.core.timestamps import truncate_to_millis

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
JITTER = 0.2


def may_retry(verdict: Verdict, *, attempts: int, max_attempts: int) -> bool:
    """Whether a failed attempt (the `attempts`-th) earns another one."""
    return not verdict.passed and verdict.retryable and attempts < max_attempts


def backoff_seconds(attempt: int, *, study_uid: str, cell_index: int) -> float:
    """Seconds to wait after attempt `attempt` (1-based) failed, jitter included, whole ms."""
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, not {attempt}")
    nominal = min(FIRST_DELAY_SECONDS * 2.0 ** min(attempt - 1, 32), MAX_DELAY_SECONDS)
    delay = nominal * (1 - JITTER * _unit_fraction(f"{study_uid}/{cell_index}/{attempt}"))
    return math.ceil(delay * 1000) / 1000


def retry_at(failed_at: datetime, attempt: int, *, study_uid: str, cell_index: int) -> datetime:
    """When attempt `attempt + 1` of the cell may start, in UTC, to the millisecond."""
    # Whole milliseconds, so the time survives the checkpoint's millisecond encoding unchanged.
    delay = backoff_seconds(attempt, study_uid=study_uid, cell_index=cell_index)
    return truncate_to_millis(failed_at) + timedelta(seconds=delay)


def _unit_fraction(text: str) -> float:
    """A number in [0, 1) drawn from the hash of `text`."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
