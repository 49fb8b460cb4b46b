"""The functional core: given a Study and the Jobs that exist, decide what happens next.

Pure functions over plain data: no I/O, no clock reads (`now` is passed in), no kopf or
Kubernetes client imports. The shell (`bentham.controller`) imports only what this package
exports: it reads the world, calls `decide`, asks `plan_write` what to do with the decision, and
carries the plan out. docs/architecture.md draws the flow.

Modules, one concept each, in the order a decision uses them:

- `reconcile`: `decide`, the pipeline of the steps below; `decision`: what it is given and returns.
- `states`: the lifecycle states, their moves and per-state facts; `lifecycle`: moving through
  them during one decision, with the events each move announces.
- `spec_hold`: holding a running study whose spec no longer reads.
- `checkpoint`: the per-cell records, packed into the status.
- `sightings`: a Job's pod's message, and when a finished Job may be judged without it.
- `results`, `retries`, `outcomes`: judging an attempt, its backoff, recording finished attempts;
  `actual_cost`: summing the cost each recorded attempt reported.
- `cell_events`, `notifications`: the Events and the webhook notes of what a decision recorded.
- `progress`, `coverage`: counts, and what they mean for completion and early failure.
- `intervention`: surfaces failing again and again, asking a person, resuming on acknowledgement.
- `running_time`, `deadlines`, `deadline_watch`, `escalation`: time spent running, the deadline's
  figures and at-risk rule, what passing it does, announcements by stage, parallelism boost.
- `cells`, `ordering`, `fanout`, `jobs`: a cell's identity, the fair start order, choosing the
  cells to start, and the batch/v1 Job (and its name) of one attempt.
- `executor_policy`, `quantities`: what the operator admin lets a namespace's studies ask of their
  pods (ServiceAccounts, tolerations, node selector keys, caps), checked beside the spec.
- `pricing`, `estimate`: the pricing table (`pricing.yaml`, or an admin's) and the cost estimate.
- `conditions`, `study_status`, `summary`: the new status and the decision that carries it.
- `pacing`, `write_plan`: when a status may wait to be written, and the plan the worker carries out.
- `refusals`: Job creations the API server refused, as failed attempts or a study waiting on a quota.
- `webhook_format`: the webhook's wire format and delivery schedule (sent by the shell).
- `webhook_policy`: which webhook URLs and addresses the shell may reach (http(s), public unless allowed).
- `timestamps`: RFC 3339 as the status stores it.
"""

from bentham.core.checkpoint import Derived
from bentham.core.decision import Decision, JobToCreate, Notification, ObservedJob, StudyEvent
from bentham.core.executor_policy import ExecutorPolicy
from bentham.core.pricing import PricingTable
from bentham.core.reconcile import decide
from bentham.core.refusals import (
    NOTHING_ASKED,
    CreateAnswer,
    CreateReport,
    Refusal,
    note_creations,
    refusal_of,
    rejected_attempts,
)
from bentham.core.sightings import PodSighting, observed_jobs
from bentham.core.write_plan import (
    Held,
    StoredStatus,
    StudyVersion,
    WritePlan,
    plan_write,
    status_to_decide_from,
    stored_status,
)

__all__ = [
    "NOTHING_ASKED",
    "CreateAnswer",
    "CreateReport",
    "Decision",
    "Derived",
    "ExecutorPolicy",
    "Held",
    "JobToCreate",
    "Notification",
    "ObservedJob",
    "PodSighting",
    "PricingTable",
    "Refusal",
    "StoredStatus",
    "StudyEvent",
    "StudyVersion",
    "WritePlan",
    "decide",
    "note_creations",
    "observed_jobs",
    "plan_write",
    "refusal_of",
    "rejected_attempts",
    "status_to_decide_from",
    "stored_status",
]
