from __future__ import annotations

from datetime import timedelta

import pytest
from core_builders import T0
from hypothesis import given
from hypothesis import strategies as st

from bentham.core.results import Verdict
from bentham.core.retries import backoff_seconds, may_retry, retry_at

RETRYABLE = Verdict.failure("ExecutorError", "TIMEOUT")
FINAL = Verdict.failure("ExecutorError", "AUTH_FAILED", retryable=False)


@pytest.mark.parametrize(
    ("attempt", "nominal"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32), (7, 60), (10, 60), (31, 60)]
)
def test_backoff_doubles_from_one_second_and_caps_at_sixty(attempt: int, nominal: float) -> None:
    for cell in range(50):
        delay = backoff_seconds(attempt, study_uid="uid", cell_index=cell)
        assert nominal * 0.8 <= delay <= nominal


@given(uid=st.text(max_size=40), cell=st.integers(0, 10**6), attempt=st.integers(1, 40))
def test_backoff_jitter_stays_within_twenty_percent_below_nominal(uid: str, cell: int, attempt: int) -> None:
    nominal = min(2.0 ** (attempt - 1), 60.0)
    delay = backoff_seconds(attempt, study_uid=uid, cell_index=cell)
    assert nominal * 0.8 <= delay <= nominal
    assert delay == backoff_seconds(attempt, study_uid=uid, cell_index=cell)


def test_backoff_jitter_spreads_a_burst_of_failures() -> None:
    delays = {backoff_seconds(7, study_uid="uid", cell_index=cell) for cell in range(100)}
    assert len(delays) > 50


def test_retry_at_is_the_failure_time_plus_the_backoff_to_the_millisecond() -> None:
    failed_at = T0 + timedelta(microseconds=123_456)
    due = retry_at(failed_at, 3, study_uid="uid", cell_index=9)
    assert due.microsecond % 1000 == 0
    assert timedelta(seconds=3.2) <= due - failed_at <= timedelta(seconds=4)


def test_max_retries_per_cell_counts_attempts() -> None:
    assert not may_retry(RETRYABLE, attempts=1, max_attempts=1)  # 1 = one try, no retry
    assert may_retry(RETRYABLE, attempts=1, max_attempts=3)
    assert may_retry(RETRYABLE, attempts=2, max_attempts=3)
    assert not may_retry(RETRYABLE, attempts=3, max_attempts=3)


def test_non_retryable_failures_and_passes_are_never_retried() -> None:
    assert not may_retry(FINAL, attempts=1, max_attempts=10)
    assert not may_retry(Verdict(True, "Passed", "", False), attempts=1, max_attempts=10)


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        backoff_seconds(0, study_uid="uid", cell_index=0)
