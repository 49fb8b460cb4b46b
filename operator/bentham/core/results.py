"""A cell's result: what the executor reports, and the validator's verdict on it.

The executor writes its result as JSON to its termination message (`/dev/termination-log`):

    {"success": true, "responseLength": 1234, "isActualContent": true, "responseTimeMs": 5120,
     "error": {"code": "TIMEOUT", "message": "...", "retryable": true},
     "evidence": [{"url": "s3://...", "sha256": "..."}], "costUsd": 0.0042}

The result's model lives in `bentham.api.results`, shared with the reference executor (executor/).
Only `success` is required; unknown fields are ignored, so executors may report more. Reading a
result never raises: a missing, empty, non-JSON, wrong-shaped or oversized message is a failed
attempt (`MissingResult`, `MalformedResult`), retryable like any transient failure.

Quality-gate failures (too short, not actual content, missing evidence) are retryable: the
surfaces answer differently every time, so a new attempt may well pass. `maxRetriesPerCell`
bounds what that costs.

`costUsd`, when reported, is what the attempt spent (USD, 0 to 1,000,000): the operator takes it to
the micro-dollar (`core.money`) and adds it to `status.cost` once, when it records the attempt's
outcome, whatever the verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from bentham.api.manifest import EvidenceLevel, QualityGates
from bentham.api.results import MAX_RESULT_BYTES as MAX_RESULT_BYTES
from bentham.api.results import CellError as CellError
from bentham.api.results import CellResult as CellResult
from bentham.api.results import Evidence as Evidence
from bentham.core.money import micro_usd
from bentham.core.refusals import JOB_NAME_TAKEN, JOB_REJECTED

# The original's codes never worth retrying: the same request fails the same way again.
NEVER_RETRIED_CODES = frozenset({"AUTH_FAILED", "QUOTA_EXCEEDED", "INVALID_REQUEST", "CONTENT_BLOCKED"})

_SNIPPET_CHARS = 200
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Verdict:
    """The validator's judgement on one attempt."""

    passed: bool
    reason: str
    """CamelCase, for machines: Passed, ExecutorError, NotActualContent, ResponseTooShort, ..."""
    message: str
    retryable: bool
    code: str | None = None
    """The executor's error code (AUTH_FAILED, CAPTCHA, ...) when it reported one."""

    @classmethod
    def failure(cls, reason: str, message: str, *, retryable: bool = True, code: str | None = None) -> Verdict:
        return cls(passed=False, reason=reason, message=message, retryable=retryable, code=code)


PASSED = Verdict(passed=True, reason="Passed", message="the result passed every quality gate", retryable=False)


def read_result(message: str | None) -> CellResult | Verdict:
    """The executor's result, or the failed verdict of a message that holds none."""
    if message is None or not message.strip():
        return Verdict.failure("MissingResult", "the executor reported no result")
    size = len(message.encode("utf-8", errors="replace"))
    if size > MAX_RESULT_BYTES:
        return Verdict.failure("MalformedResult", f"the result is {size} bytes, more than {MAX_RESULT_BYTES}")
    try:
        return CellResult.model_validate_json(message)
    except ValidationError as error:
        return Verdict.failure("MalformedResult", f"the result is not a cell result: {_first_problem(error)}")
    except (ValueError, RecursionError) as error:  # pragma: no cover - pydantic reports JSON errors itself
        return Verdict.failure("MalformedResult", f"the result is not JSON: {error}")


def judge_result(result: CellResult, gates: QualityGates, evidence_level: EvidenceLevel) -> Verdict:
    """Applies the validator's gates to a result, first failing gate wins."""
    if not result.success:
        return _executor_error(result.error)
    if gates.requireActualContent and (not result.isActualContent or result.responseLength == 0):
        return Verdict.failure(
            "NotActualContent", "the response is not actual content (an error page, a CAPTCHA, empty)"
        )
    if gates.minResponseLength > 0 and result.responseLength < gates.minResponseLength:
        return Verdict.failure(
            "ResponseTooShort",
            f"the response is {result.responseLength} characters, fewer than {gates.minResponseLength}",
        )
    if evidence_level is EvidenceLevel.FULL:
        problem = _evidence_problem(result.evidence)
        if problem is not None:
            return Verdict.failure("MissingEvidence", f"evidenceLevel is full but {problem}")
    return PASSED


def _evidence_problem(evidence: list[Evidence] | None) -> str | None:
    """What keeps `evidence` from proving the answer was stored: none at all, or an item without url or digest."""
    if not evidence:
        return "the result carries no evidence"
    for position, item in enumerate(evidence):
        if not item.url:
            return f"evidence[{position}] has no url"
        if item.sha256 is None or not _SHA256.fullmatch(item.sha256):
            return f"evidence[{position}].sha256 is not 64 hexadecimal digits"
    return None


@dataclass(frozen=True)
class Assessment:
    """A finished attempt: the verdict on it, and what its executor reported spending."""

    verdict: Verdict
    cost_micro_usd: int | None = None
    """`costUsd` of a readable result in micro-dollars; None when the result does not say (or cannot be read)."""


def assess_attempt(
    *,
    phase: Literal["succeeded", "failed"],
    termination_message: str | None,
    failure_reason: str | None,
    gates: QualityGates,
    evidence_level: EvidenceLevel,
) -> Assessment:
    """The verdict on a finished attempt, from its Job's phase and its executor's message, and its cost.

    A result is read the same way whatever the Job's phase (an executor may exit non-zero after
    reporting, or be stopped by the deadline after writing its result). A failed Job without a
    readable result is `ExecutorFailed` (crash, DeadlineExceeded, eviction), citing the log tail
    that `FallbackToLogsOnError` put in the message.
    """
    if failure_reason in (JOB_REJECTED, JOB_NAME_TAKEN):  # the API server never created the Job (`refusals`)
        return Assessment(Verdict.failure(failure_reason, termination_message or failure_reason,
                                          retryable=failure_reason == JOB_NAME_TAKEN))  # fmt: skip
    result = read_result(termination_message)
    if isinstance(result, CellResult):
        cost = micro_usd(result.costUsd) if result.costUsd is not None else None
        return Assessment(judge_result(result, gates, evidence_level), cost)
    if phase == "failed":
        why = failure_reason or "the executor's Job failed"
        detail = f": {_snippet(termination_message)}" if termination_message and termination_message.strip() else ""
        return Assessment(Verdict.failure("ExecutorFailed", f"{why}{detail}"))
    return Assessment(result)


def judge_attempt(
    *,
    phase: Literal["succeeded", "failed"],
    termination_message: str | None,
    failure_reason: str | None,
    gates: QualityGates,
    evidence_level: EvidenceLevel,
) -> Verdict:
    """The verdict on a finished attempt (`assess_attempt` without the cost)."""
    return assess_attempt(
        phase=phase,
        termination_message=termination_message,
        failure_reason=failure_reason,
        gates=gates,
        evidence_level=evidence_level,
    ).verdict


def _executor_error(error: CellError | None) -> Verdict:
    if error is None:
        return Verdict.failure("ExecutorError", "the executor reported failure without an error")
    never = error.code in NEVER_RETRIED_CODES
    text = f"{error.code}: {error.message}" if error.message else error.code
    return Verdict.failure("ExecutorError", text, retryable=error.retryable and not never, code=error.code)


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _snippet(text: str) -> str:
    # Fallback-to-logs messages are log tails: keep them short and on one line.
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET_CHARS else flat[-_SNIPPET_CHARS:]
