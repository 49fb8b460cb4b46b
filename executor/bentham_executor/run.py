"""One attempt, start to end: read the environment, ask, store the evidence, report the result.

Exit codes: 0 when a result was reported, whatever the surface said (docs/executor.md); 2 when the
executor's own configuration cannot run the attempt (a variable missing or malformed, no API key,
no proxy for the location, no evidence store) — a result is reported then too, never retried; any
other exit is a crash, whose log tail the operator reads (`FallbackToLogsOnError`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

import bentham
from bentham.api.manifest import EvidenceLevel
from bentham.api.results import MAX_RESULT_BYTES, CellError, CellResult, Evidence
from bentham_executor.answers import CONTENT_BLOCKED, RATE_LIMITED, TIMEOUT, Answer, Question, SurfaceFailure
from bentham_executor.attempt import Attempt, ConfigurationError, read_attempt
from bentham_executor.catalog import API_SURFACES, ApiSurface, Ask, not_served_reason
from bentham_executor.cost import default_model, pricing_table, request_cost_usd
from bentham_executor.egress import LocationNotMapped, proxy_for, read_proxy_map, redacted
from bentham_executor.evidence import EvidenceStore, build_document, store_from_env
from bentham_executor.surfaces.connection import Connection, http_client

EXIT_REPORTED = 0
EXIT_MISCONFIGURED = 2
TERMINATION_LOG_VARIABLE = "BENTHAM_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"

# Codes of the executor's own making (the SDKs' are in answers.py).
EXECUTOR_MISCONFIGURED = "EXECUTOR_MISCONFIGURED"
SURFACE_NOT_SUPPORTED = "SURFACE_NOT_SUPPORTED"
PROXY_NOT_CONFIGURED = "PROXY_NOT_CONFIGURED"
EVIDENCE_NOT_STORED = "EVIDENCE_NOT_STORED"

# A 429 is waited out inside the attempt at most this often, and only if a call still fits after it.
MAX_RATE_LIMIT_WAITS = 3
MIN_CALL_SECONDS = 1.0
# How much longer than the SDK's own timeout the watchdog gives a call before calling it hung.
WATCHDOG_GRACE_SECONDS = 0.5
_MESSAGE_CHARS = 1_000


class ExecutorResult(CellResult):
    """The operator's result model, plus what this executor reports beyond it (the operator ignores it)."""

    surface: str | None = None
    model: str | None = None
    inputTokens: int | None = Field(default=None, ge=0)
    outputTokens: int | None = Field(default=None, ge=0)


@dataclass(frozen=True)
class Outcome:
    """The result to report and the exit code to end with."""

    result: ExecutorResult
    exit_code: int

    @property
    def message(self) -> str:
        """The termination message: the result as JSON, at most 4 KiB."""
        return self.result.model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class Clock:
    """Time, injectable for tests: a monotonic clock, a sleep and the wall clock."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)


def failed(code: str, message: str, *, retryable: bool, exit_code: int = EXIT_REPORTED, **more: Any) -> Outcome:
    """An attempt that got no answer, reported with the contract's code."""
    error = CellError(code=code, message=message[:_MESSAGE_CHARS], retryable=retryable)
    return Outcome(ExecutorResult(success=False, error=error, **more), exit_code)


def run_attempt(env: Mapping[str, str], clock: Clock | None = None) -> Outcome:
    """Runs the attempt `env` describes and says what to report; never raises for anything it can name."""
    clock = clock or Clock()
    surface_id = env.get("BENTHAM_SURFACE", "")
    surface = API_SURFACES.get(surface_id)
    if surface is None:
        if not surface_id:
            return failed(EXECUTOR_MISCONFIGURED, "BENTHAM_SURFACE is not set", retryable=False, exit_code=2)
        return failed(SURFACE_NOT_SUPPORTED, not_served_reason(surface_id), retryable=False, surface=surface_id)
    try:
        attempt = read_attempt(env)
        prepared = _prepare(env, attempt, surface)
    except ConfigurationError as error:
        return failed(EXECUTOR_MISCONFIGURED, str(error), retryable=False, exit_code=EXIT_MISCONFIGURED)
    except LocationNotMapped as error:
        return failed(PROXY_NOT_CONFIGURED, str(error), retryable=False, exit_code=EXIT_MISCONFIGURED)
    except _MissingKey as error:
        return failed("AUTH_FAILED", str(error), retryable=False, exit_code=EXIT_MISCONFIGURED)
    return _ask_and_report(attempt, prepared, clock)


class _MissingKey(Exception):
    pass


@dataclass(frozen=True)
class _Prepared:
    """Everything an attempt needs before it may spend money: checked up front."""

    surface: ApiSurface
    ask: Ask
    question: Question
    api_key: str
    base_url: str | None
    proxy: str | None
    store: EvidenceStore | None
    pricing: Any


def _prepare(env: Mapping[str, str], attempt: Attempt, surface: ApiSurface) -> _Prepared:
    api_key = env.get(surface.key_variable)
    if not api_key:
        raise _MissingKey(
            f"{surface.key_variable} is not set: give {attempt.surface}'s API key from a Secret "
            "(spec.executor.env, valueFrom.secretKeyRef)"
        )
    table = pricing_table(env)
    model = attempt.model or default_model(table, attempt.surface)
    if model is None:
        raise ConfigurationError(f"{attempt.surface} has no options.model and the pricing table names no default")
    proxy = proxy_for(attempt.location, read_proxy_map(env))
    timeout_s = attempt.query_timeout_ms / 1000
    store = None
    if attempt.evidence_level is not EvidenceLevel.NONE:
        store = store_from_env(env, connect_timeout_s=attempt.connection_timeout_ms / 1000, read_timeout_s=timeout_s)
    max_tokens = attempt.surface_options.get("maxOutputTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise ConfigurationError("BENTHAM_SURFACE_OPTIONS: maxOutputTokens must be a whole number of at least 1")
    return _Prepared(
        surface=surface,
        ask=surface.ask_function(),
        question=Question(attempt.query_text, attempt.query_context, model, max_tokens),
        api_key=api_key,
        base_url=env.get(surface.base_url_variable) or surface.default_base_url,
        proxy=proxy,
        store=store,
        pricing=table,
    )


def _ask_and_report(attempt: Attempt, prepared: _Prepared, clock: Clock) -> Outcome:
    started_at = clock.wall()
    described: dict[str, Any] = {"surface": attempt.surface, "model": prepared.question.model}
    try:
        answer, response_ms = _ask_within_budget(attempt, prepared, clock)
    except SurfaceFailure as failure:
        # A call the service answered with an error is not billed; one that timed out may have been.
        cost = 0.0 if failure.http_status is not None else None
        return failed(failure.code, failure.message, retryable=failure.retryable, costUsd=cost, **described)
    cost = request_cost_usd(
        prepared.pricing,
        attempt.surface,
        prepared.question.model,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
    )
    actual = bool(answer.text.strip()) and not answer.refused and answer.blocked_by is None
    tokens: dict[str, Any] = {"inputTokens": answer.input_tokens, "outputTokens": answer.output_tokens}
    evidence: list[Evidence] | None = None
    if prepared.store is not None:
        metadata = {
            "model": prepared.question.model,
            "responseModel": answer.model,
            "startedAt": started_at.isoformat(),
            "finishedAt": clock.wall().isoformat(),
            "responseTimeMs": response_ms,
            "responseLength": len(answer.text),
            "isActualContent": actual,
            "finishReason": answer.finish_reason,
            "refused": answer.refused,
            "blockedBy": answer.blocked_by,
            "costUsd": cost,
            "egress": {"location": attempt.location, "proxy": redacted(prepared.proxy) if prepared.proxy else None},
            "executor": {"name": "bentham-executor", "version": bentham.__version__},
            **tokens,
        }
        try:
            document = build_document(
                attempt,
                metadata=metadata,
                request=answer.request,
                response=answer.response,
                retention_enforced_by=prepared.store.retention_enforced_by(attempt.retention),
            )
            evidence = [prepared.store.put(document, attempt.retention, clock.wall())] if document else None
        except Exception as error:  # any store's failure: the answer is lost as evidence, so try again
            return failed(
                EVIDENCE_NOT_STORED,
                f"the answer came but its evidence could not be stored: {type(error).__name__}: {error}",
                retryable=True,
                costUsd=cost,
                **described,
                **tokens,
            )
    if answer.blocked_by is not None:
        return failed(
            CONTENT_BLOCKED,
            f"{attempt.surface} withheld the answer: {answer.blocked_by}",
            retryable=False,
            costUsd=cost,
            evidence=evidence,
            responseTimeMs=response_ms,
            **described,
            **tokens,
        )
    result = ExecutorResult(
        success=True,
        responseLength=len(answer.text),
        isActualContent=actual,
        responseTimeMs=response_ms,
        evidence=evidence,
        costUsd=cost,
        **described,
        **tokens,
    )
    return Outcome(result, EXIT_REPORTED)


def _ask_within_budget(attempt: Attempt, prepared: _Prepared, clock: Clock) -> tuple[Answer, int]:
    """The answer and how long its call took; 429s are waited out while a call still fits in the query's time."""
    deadline = clock.monotonic() + attempt.query_timeout_ms / 1000
    connect_s = attempt.connection_timeout_ms / 1000
    client = http_client(proxy=prepared.proxy, timeout_s=attempt.query_timeout_ms / 1000, connect_timeout_s=connect_s)
    waits = 0
    with client:
        while True:
            remaining = deadline - clock.monotonic()
            connection = Connection(
                api_key=prepared.api_key,
                base_url=prepared.base_url,
                http_client=client,
                timeout_s=remaining,
                connect_timeout_s=connect_s,
                proxied=prepared.proxy is not None,
            )
            started = clock.monotonic()
            try:
                answer = _call_with_watchdog(prepared.ask, prepared.question, connection)
            except SurfaceFailure as failure:
                wait = failure.retry_after_s
                if failure.code != RATE_LIMITED or wait is None:
                    raise
                if waits < MAX_RATE_LIMIT_WAITS and clock.monotonic() + wait + MIN_CALL_SECONDS <= deadline:
                    waits += 1
                    clock.sleep(wait)
                    continue
                failure.message += (
                    f" (the surface asked to retry after {wait:g} s, which does not fit in the "
                    f"{attempt.query_timeout_ms} ms query timeout after {waits} wait(s))"
                )
                raise
            return answer, round((clock.monotonic() - started) * 1000)


def _call_with_watchdog(ask: Ask, question: Question, connection: Connection) -> Answer:
    """`ask`, given up as TIMEOUT once its time is out even if the SDK's own timeout never fires."""
    if connection.timeout_s <= 0:
        raise SurfaceFailure(TIMEOUT, "the query's time ran out before the surface could be asked")
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["answer"] = ask(question, connection)
        except BaseException as error:  # handed to the waiting thread, which raises it
            box["error"] = error

    worker = threading.Thread(target=call, name="ask", daemon=True)  # a hung call must not keep the process up
    worker.start()
    worker.join(connection.timeout_s + WATCHDOG_GRACE_SECONDS)
    if worker.is_alive():
        raise SurfaceFailure(TIMEOUT, f"no answer within the query timeout ({connection.timeout_s:.1f} s left)")
    if "error" in box:
        raise box["error"]
    answer: Answer = box["answer"]
    return answer


def write_termination_message(message: str, path: Path) -> None:
    """Writes the result where Kubernetes reads it; refuses (loudly) a message Kubernetes would cut."""
    size = len(message.encode("utf-8"))
    if size > MAX_RESULT_BYTES:  # cannot happen with messages cut to _MESSAGE_CHARS; a bug if it does
        raise ValueError(f"the result is {size} bytes, more than the {MAX_RESULT_BYTES} Kubernetes keeps")
    path.write_text(message, encoding="utf-8")


def main() -> None:
    """`bentham-executor`: run the attempt in the environment, write the termination message, exit."""
    outcome = run_attempt(os.environ)
    message = outcome.message
    write_termination_message(message, Path(os.environ.get(TERMINATION_LOG_VARIABLE, DEFAULT_TERMINATION_LOG)))
    print(message, flush=True)
    sys.exit(outcome.exit_code)
