"""The Study's status: what the operator observed and decided. Only the operator writes it.

Every field is declared here, and so in the CRD: the API server silently prunes undeclared
status fields, which would make a status write look lost.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StudyState(StrEnum):
    """The study's place in its lifecycle (see docs/lifecycle.md)."""

    MANIFEST_RECEIVED = "manifest_received"
    VALIDATING = "validating"
    QUEUED = "queued"
    EXECUTING = "executing"
    VALIDATING_RESULTS = "validating_results"
    PAUSED = "paused"
    HUMAN_INTERVENTION_REQUIRED = "human_intervention_required"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeadlineSetBy(StrEnum):
    """Which of the manifest's bounds sets the study's end (docs/lifecycle.md, "Deadlines")."""

    DEADLINE = "deadline"
    STUDY_TIMEOUT = "studyTimeout"


class StatusModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def as_stored(self) -> dict[str, Any]:
        """As the API server stores it: JSON types, unset fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class Condition(StatusModel):
    """A standard Kubernetes condition."""

    type: str = Field(max_length=64, description="CamelCase condition type, e.g. Complete or AtRisk.")
    status: str = Field(pattern="^(True|False|Unknown)$", description="True, False or Unknown.")
    reason: str = Field(max_length=128, description="CamelCase reason a machine can match.")
    message: str = Field(default="", max_length=4_096, description="What a person should know.")
    lastTransitionTime: str = Field(description="When status last changed (RFC 3339).")
    observedGeneration: int | None = Field(default=None, description="The spec generation this reflects.")


class CellCounts(StatusModel):
    """Cell counts of one surface or location."""

    total: int = Field(default=0, description="Cells in this slice.")
    completed: int = Field(default=0, description="Cells whose result passed the quality gates.")
    failed: int = Field(default=0, description="Cells that failed for good (out of attempts or not retryable).")
    blocked: int = Field(
        default=0,
        description=(
            "Of the failed cells, those that failed for a reason a person can fix (policy.interventionFailures) "
            "on a required surface: acknowledging the intervention reopens them with a fresh budget of attempts."
        ),
    )
    executing: int = Field(default=0, description="Cells with an attempt in flight.")
    pending: int = Field(default=0, description="Cells waiting to start or to retry.")
    skipped: int = Field(
        default=0, description="Cells never run: the deadline passed with every coverage threshold met."
    )
    required: bool | None = Field(default=None, description="For surfaces: whether it blocks completion.")


class Progress(StatusModel):
    """How far the study is."""

    totalCells: int = Field(default=0, description="queries x surfaces x locations.")
    completedCells: int = Field(default=0, description="Cells whose result passed the quality gates.")
    failedCells: int = Field(default=0, description="Cells that failed for good; they never count as completed.")
    executingCells: int = Field(default=0, description="Cells with an attempt in flight.")
    pendingCells: int = Field(default=0, description="Cells waiting to start or to retry.")
    skippedCells: int = Field(
        default=0,
        description=(
            "Cells never run: the deadline passed with every coverage threshold met, so cells not yet "
            "started were skipped (those in flight finished and are counted where they ended)."
        ),
    )
    completionRate: float = Field(default=0.0, description="completedCells / totalCells, 0-1.")
    summary: str = Field(default="0/0", description="completed/total, for kubectl get.")
    percent: str = Field(default="0%", description="completionRate as a percentage, for kubectl get.")
    bySurface: dict[str, CellCounts] = Field(default_factory=dict, description="Counts per surface id.")
    byLocation: dict[str, CellCounts] = Field(default_factory=dict, description="Counts per location id.")


class SurfaceEstimate(StatusModel):
    """One surface's share of the cost estimate."""

    model: str | None = Field(
        default=None,
        max_length=200,
        description="The model priced: surfaces[].options.model, else the pricing table's default for the surface.",
    )
    listed: bool = Field(
        default=True,
        description="The pricing table lists this surface and model; when false it is priced at the unknown rate.",
    )
    perRequestUsd: float = Field(default=0.0, description="USD per request, before the adjustments.")
    cells: int = Field(default=0, description="The surface's cells: queries x locations.")
    minUsd: float = Field(default=0.0, description="The low end of the surface's estimate, adjusted, in USD.")
    maxUsd: float = Field(default=0.0, description="The high end of the surface's estimate, adjusted, in USD.")


class CostEstimate(StatusModel):
    """What the study should cost, as the original's validator estimates it (docs/cost.md).

    Computed once, when the operator first sees the study, from the manifest and the operator's
    pricing table; later edits and table changes do not move it.
    """

    cells: int = Field(default=0, description="queries x surfaces x locations.")
    minUsd: float = Field(default=0.0, description="The low end of the estimate, in USD.")
    maxUsd: float = Field(default=0.0, description="The high end of the estimate, in USD.")
    multiplier: float = Field(
        default=1.0,
        description="The adjustments applied: x1.2 with any mobile-proxy location, x1.1 with full evidence.",
    )
    bySurface: dict[str, SurfaceEstimate] = Field(default_factory=dict, description="The estimate per surface id.")


class ActualCost(StatusModel):
    """What the executors reported spending: the sum of every recorded attempt's costUsd (docs/cost.md).

    The sums are kept in whole micro-dollars (`totalMicroUsd`, `bySurfaceMicroUsd`), so they are
    exact however many attempts add to them; the USD fields are the same sums, for reading.
    """

    totalMicroUsd: int = Field(
        default=0, ge=0, description="Micro-dollars (USD x 1,000,000) reported by every attempt so far: the exact sum."
    )
    bySurfaceMicroUsd: dict[str, int] = Field(
        default_factory=dict, description="Micro-dollars reported per surface id: the exact sums."
    )
    totalUsd: float = Field(default=0.0, description="totalMicroUsd in USD: all attempts so far, failed ones too.")
    bySurface: dict[str, float] = Field(default_factory=dict, description="bySurfaceMicroUsd in USD, per surface id.")
    attempts: int = Field(default=0, description="Attempts whose reported cost is counted; each counts once.")


class DeadlineStatus(StatusModel):
    """Whether the study will make its deadline (docs/lifecycle.md, "Deadlines")."""

    deadline: str | None = Field(
        default=None,
        description="When the study's running time ends (RFC 3339): the manifest's deadline, or the moment its "
        "running time reaches execution.timeouts.studyTimeoutMs, whichever comes first.",
    )
    setBy: DeadlineSetBy | None = Field(
        default=None,
        description="Which bound sets `deadline`: `deadline` (the manifest's) or `studyTimeout` (running time; "
        "while paused it moves with the clock, as paused time does not count).",
    )
    timeRemainingSeconds: int | None = Field(default=None, description="Seconds until the deadline, 0 once passed.")
    cellsNeeded: int | None = Field(
        default=None, description="Required-surface cells still to complete for every threshold to be met."
    )
    requiredRate: float | None = Field(
        default=None, description="Cells per hour needed to meet every threshold by the deadline."
    )
    currentRate: float | None = Field(
        default=None, description="Required-surface cells completed per hour of running (not paused) time."
    )
    projectedCompletion: str | None = Field(
        default=None, description="When the thresholds are met at the current rate (RFC 3339)."
    )
    bottleneckSurface: str | None = Field(
        default=None, description="The required surface furthest behind its coverage threshold."
    )
    checkedAt: str | None = Field(
        default=None, description="When the figures above were computed; they refresh at least every minute."
    )
    atRisk: bool = Field(default=False, description="The study is projected to miss its deadline.")
    atRiskSince: str | None = Field(default=None, description="When the study last became at risk (RFC 3339).")
    escalationStage: int | None = Field(
        default=None,
        description=(
            "While at risk, the stage last announced: 0 became at risk, 1 half the time to the deadline "
            "used, 2 three quarters used."
        ),
    )
    missed: bool = Field(
        default=False,
        description="This deadline passed with a required surface below its threshold; the policy was applied.",
    )


class Intervention(StatusModel):
    """Why the study waits for a person, and what stopped meanwhile."""

    reason: str = Field(max_length=128, description="The latest cause: SurfaceFailing or DeadlineMissed.")
    message: str = Field(default="", max_length=4_096, description="What happened, each cause in turn.")
    since: str = Field(description="When the intervention was first asked for (RFC 3339).")
    blockedSurfaces: list[str] = Field(
        default_factory=list, description="Required surfaces that start no cell until a person resumes the study."
    )
    allCellsStopped: bool = Field(default=False, description="No cell of any surface starts (the deadline was missed).")
    ack: str | None = Field(
        default=None,
        description=(
            "spec.interventionAck when the intervention began; setting spec.interventionAck to any "
            "other value resumes the study."
        ),
    )


class Checkpoint(StatusModel):
    """Enough to resume after any crash; see docs/checkpoint.md for the encoding."""

    version: int = Field(default=1, description="Checkpoint format version.")
    sequence: int = Field(default=0, description="Increases with every checkpoint written.")
    timestamp: str | None = Field(default=None, description="When it was written (RFC 3339).")
    cells: str = Field(default="", description="Per-cell outcome and attempt count, packed (see docs).")
    inFlight: list[str] = Field(default_factory=list, description="Jobs of attempts in flight.")


class MatrixFingerprint(StatusModel):
    """The cell matrix the study started with (docs/lifecycle.md, "Editing a study")."""

    queries: str = Field(description="SHA-256 of the query texts, in order.")
    surfaces: str = Field(description="SHA-256 of the surface ids, in order.")
    locations: str = Field(description="SHA-256 of the location ids, in order.")
    cells: int = Field(description="queries x surfaces x locations.")


class StudyStatus(StatusModel):
    """What the operator observed and decided."""

    state: StudyState | None = Field(default=None, description="The lifecycle state.")
    message: str | None = Field(default=None, max_length=4_096, description="A human summary of the state.")
    observedGeneration: int | None = Field(default=None, description="The spec generation last acted on.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Standard conditions: Ready, Complete, Failed, Paused, AtRisk, ..."
    )
    progress: Progress | None = Field(default=None, description="Cell counts, overall and per slice.")
    estimate: CostEstimate | None = Field(
        default=None, description="The estimated cost: cells, a USD range and a per-surface breakdown."
    )
    cost: ActualCost | None = Field(
        default=None, description="The cost the executors reported (costUsd), once any did: total and per surface."
    )
    deadline: DeadlineStatus | None = Field(default=None, description="Deadline tracking.")
    checkpoint: Checkpoint | None = Field(default=None, description="The crash-recovery checkpoint.")
    matrix: MatrixFingerprint | None = Field(
        default=None, description="The cell matrix the study started with: its results are recorded against it."
    )
    parallelism: int | None = Field(
        default=None, description="Cells allowed in flight now (may be raised when at risk)."
    )
    parallelismChangedAt: str | None = Field(
        default=None, description="When the operator last raised or lowered parallelism (RFC 3339)."
    )
    runningSeconds: int = Field(
        default=0, description="Seconds spent running before runningSince; paused time never counts."
    )
    runningSince: str | None = Field(
        default=None, description="When the current running stretch began (RFC 3339); absent when not running."
    )
    consecutiveFailures: dict[str, int] = Field(
        default_factory=dict,
        description="Per required surface: failed attempts in a row that count towards human intervention.",
    )
    intervention: Intervention | None = Field(
        default=None, description="Set while the study waits for a person (docs/lifecycle.md)."
    )
    warnings: list[str] = Field(default_factory=list, description="Accepted, but worth knowing (see docs).")
    startedAt: str | None = Field(default=None, description="When the first cell started (RFC 3339).")
    completedAt: str | None = Field(default=None, description="When the study reached a terminal state.")
