"""The executor's report on one attempt: the termination message's shape, shared by both sides.

The executor writes one `CellResult` as JSON to its termination message (`/dev/termination-log`);
the operator reads it back with the same model (`bentham.core.results.read_result`), so what one
side writes and the other parses cannot drift apart. docs/executor.md describes every field.

Only `success` is required; unknown fields are ignored, so executors may report more.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Kubernetes keeps at most 4 KiB of a termination message; anything longer was not ours.
MAX_RESULT_BYTES = 4_096

# An attempt that reports more than this is not reporting dollars; a sum of such could overflow.
MAX_ATTEMPT_COST_USD = 1_000_000

MAX_ERROR_CODE_CHARS = 128
MAX_ERROR_MESSAGE_CHARS = 4_096


class _ResultModel(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class CellError(_ResultModel):
    """Why the executor could not get an answer."""

    code: str = Field(default="UNKNOWN", max_length=MAX_ERROR_CODE_CHARS)
    message: str = Field(default="", max_length=MAX_ERROR_MESSAGE_CHARS)
    retryable: bool = True


class Evidence(_ResultModel):
    """A reference to stored evidence of the answer."""

    url: str | None = None
    sha256: str | None = None


class CellResult(_ResultModel):
    """The executor's report on one attempt."""

    success: bool
    responseLength: int = Field(default=0, ge=0)
    isActualContent: bool = False
    responseTimeMs: int | None = Field(default=None, ge=0)
    error: CellError | None = None
    evidence: list[Evidence] | None = None
    costUsd: float | None = Field(default=None, ge=0, le=MAX_ATTEMPT_COST_USD, allow_inf_nan=False)
