"""Job creations the API server refused, and what a study makes of them (docs/lifecycle.md, "Refused Jobs").

The shell creates the Jobs a decision asks for. An answer worth trying again at once (a timeout,
429, a 5xx) fails its pass, which is retried with backoff; every other refusal is reported to
the next decision as one of:

- **rejected** (400, 422 and any other 4xx not named below): the Job built from the study's
  spec is invalid and would be refused again the same way. The attempt fails with the verdict
  `JobRejected` and the API server's message, and is not retried.
- **waiting** (403 Forbidden: a ResourceQuota's "exceeded quota", an RBAC refusal such as
  `blockOwnerDeletion` without `studies/finalizers`, an admission policy): the cluster's rules,
  which an admin may change without the study changing. The attempt keeps its number, spends
  nothing from its budget, and its Job is asked for again every pass, at least every
  `WAITING_RETRY_S`, until it is created.
- **name taken** (409 AlreadyExists from a Job that is not this attempt's: it lacks this study's
  uid label, this cell's or this attempt's label, or is controlled by another owner). The
  attempt fails with the verdict `JobNameTaken` naming that Job; it may be retried, since the
  next attempt's Job has another name. The operator never deletes that Job: it is not ours.

Any refusal sets the study's condition `JobsRejected=True` (reason `JobRejected`, `JobNameTaken`,
`QuotaExceeded` or `Forbidden`; message: the API server's), announced by one Warning Event when
it turns True or changes reason. Once a pass creates every Job it asked for, it turns False.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from bentham.api.status import Condition
from bentham.core.conditions import clip, condition_of, with_condition
from bentham.core.decision import Decision, JobToCreate, ObservedJob, StudyEvent
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID

JOBS_REJECTED = "JobsRejected"
"""The study's condition: True while the API server refuses the Jobs the study asks for."""
JOB_REJECTED = "JobRejected"
"""The verdict (and condition reason) of an attempt whose Job the API server will never admit."""
JOB_NAME_TAKEN = "JobNameTaken"
"""The verdict (and condition reason) of an attempt whose Job name another object holds."""
QUOTA_EXCEEDED = "QuotaExceeded"
FORBIDDEN = "Forbidden"
JOBS_CREATED = "JobsCreated"
WAITING_RETRY_S = 10.0
"""How soon a study whose Jobs wait on a quota or a permission asks for them again, at the latest."""

RefusalKind = Literal["rejected", "waiting", "name_taken"]


@dataclass(frozen=True)
class CreateAnswer:
    """What the API server answered to one Job create that created nothing (a 4xx other than 429)."""

    code: int
    message: str
    holder: Mapping[str, Any] | None = None
    """For a 409, the metadata of the Job holding the name; None when it was gone by the time we looked."""


@dataclass(frozen=True)
class Refusal:
    """An attempt whose Job the API server would not create."""

    job_name: str
    cell_index: int
    attempt: int
    kind: RefusalKind
    reason: str
    """`JobRejected`, `JobNameTaken`, `QuotaExceeded` or `Forbidden`."""
    message: str


@dataclass(frozen=True)
class CreateReport:
    """What became of the Jobs one carry-out asked for: how many, and which were refused."""

    asked: int = 0
    refusals: tuple[Refusal, ...] = ()

    def refused_anew(self, since: CreateReport) -> bool:
        """Whether this report refuses a Job that `since` (the report the last decision was given) did not."""
        known = {refusal.job_name for refusal in since.refusals}
        return any(refusal.job_name not in known for refusal in self.refusals)


NOTHING_ASKED = CreateReport()


def refusal_of(job: JobToCreate, answer: CreateAnswer, *, study_uid: str) -> Refusal | None:
    """What the API server's `answer` to creating `job` means; None when it means the Job is there and ours.

    A 409 is ours only when the Job holding the name carries this study's uid, this cell's index
    and this attempt's number as labels, and no other controller owns it: then it was created by
    an earlier pass. A 409 whose holder is gone by the time it is read is not a refusal either:
    the next pass asks for the Job again.
    """
    if answer.code == 409:
        if answer.holder is None or not _not_ours(answer.holder, job, study_uid):
            return None
        why = _not_ours(answer.holder, job, study_uid)
        message = f"Job {job.name} already exists and is not this attempt's ({why}); its name is taken"
        return _refused(job, "name_taken", JOB_NAME_TAKEN, message)
    if answer.code == 403:
        reason = QUOTA_EXCEEDED if "exceeded quota" in answer.message else FORBIDDEN
        return _refused(job, "waiting", reason, f"creating Job {job.name} is forbidden: {answer.message}")
    return _refused(job, "rejected", JOB_REJECTED, f"the API server refused Job {job.name}: {answer.message}")


def rejected_attempts(report: CreateReport) -> list[ObservedJob]:
    """The refused attempts that fail, as failed Jobs for the decision to record (`results.assess_attempt`).

    No pod ever ran, so nothing waits for one (`finished_at` None); the verdict's reason rides in
    `failure_reason` and the API server's message in `termination_message`.
    """
    return [
        ObservedJob(
            name=refusal.job_name,
            cell_index=refusal.cell_index,
            attempt=refusal.attempt,
            phase="failed",
            termination_message=refusal.message,
            failure_reason=refusal.reason,
            finished_at=None,
        )
        for refusal in report.refusals
        if refusal.kind != "waiting"
    ]


def note_creations(decision: Decision, report: CreateReport, *, generation: int, now: datetime) -> Decision:
    """`decision`, told what became of the Jobs last asked for: the `JobsRejected` condition, its Event, a retry.

    A refused name is never deleted: no Job of ours has it, and a taken one belongs to someone else.
    """
    refused = {refusal.job_name for refusal in report.refusals}
    decision = replace(decision, delete=[name for name in decision.delete if name not in refused])
    previous = next((c for c in decision.status.conditions if c.type == JOBS_REJECTED), None)
    was_true = previous is not None and previous.status == "True"
    if not report.refusals:
        if report.asked == 0 or not was_true:
            return decision
        return _with(decision, False, JOBS_CREATED, "every Job asked for was created", previous, generation, now)
    first = min(report.refusals, key=lambda refusal: _SEVERITY[refusal.kind])
    decision = _with(decision, True, first.reason, first.message, previous, generation, now)
    if not was_true or previous is None or previous.reason != first.reason:
        more = len(report.refusals) - 1
        text = first.message + (f" (and {more} more Job{'s' if more != 1 else ''} refused)" if more else "")
        decision = replace(decision, events=[*decision.events, StudyEvent("Warning", first.reason, clip(text, 1_024))])
    if any(refusal.kind == "waiting" for refusal in report.refusals):
        requeue = decision.requeue_after
        decision = replace(decision, requeue_after=min(requeue or WAITING_RETRY_S, WAITING_RETRY_S))
    return decision


def _with(
    decision: Decision,
    true: bool,
    reason: str,
    message: str,
    previous: Condition | None,
    generation: int,
    now: datetime,
) -> Decision:
    """`decision` whose status has the `JobsRejected` condition so."""
    condition = condition_of(
        JOBS_REJECTED,
        true,
        reason=reason,
        message=message,
        previous=[previous] if previous is not None else [],
        generation=generation,
        now=now,
    )
    conditions = with_condition(decision.status.conditions, condition)
    return replace(decision, status=decision.status.model_copy(update={"conditions": conditions}))


_SEVERITY: dict[RefusalKind, int] = {"rejected": 0, "name_taken": 1, "waiting": 2}


def _refused(job: JobToCreate, kind: RefusalKind, reason: str, message: str) -> Refusal:
    return Refusal(job.name, job.cell.index, job.attempt, kind, reason, clip(message))


def _not_ours(holder: Mapping[str, Any], job: JobToCreate, study_uid: str) -> str:
    """Why the Job `holder` is not attempt `job` of study `study_uid`; empty when it is."""
    labels = holder.get("labels") or {}
    wanted = {LABEL_STUDY_UID: study_uid, LABEL_CELL_INDEX: str(job.cell.index), LABEL_ATTEMPT: str(job.attempt)}
    for label, value in wanted.items():
        if labels.get(label) != value:
            found = labels.get(label)
            return f"its label {label} is {found!r}, not {value!r}" if found is not None else f"it has no label {label}"
    controllers = [ref for ref in holder.get("ownerReferences") or [] if ref.get("controller")]
    if any(ref.get("uid") != study_uid for ref in controllers):
        return "another object controls it"
    return ""
