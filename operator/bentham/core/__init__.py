"""The functional core: given a Study and the Jobs that exist, decide what happens next.

Pure functions over plain data: no I/O, no clock reads (`now` is passed in), no kopf or
Kubernetes client imports. The shell (`bentham.controller`) reads the world, calls
`bentham.core.reconcile.decide`, and applies the `Decision` it returns.

Modules, one concept each:

- `states`: the lifecycle state machine and its allowed moves; `lifecycle`: moving through it
  during one decision, with the events each move announces.
- `cells`: a cell's identity, its label key and its Jobs' names.
- `ordering`: the fair order in which cells start.
- `results`: reading the executor's result and judging it with the quality gates.
- `retries`: how many attempts a cell gets and how long it waits between them.
- `checkpoint`: the per-cell records, packed into the status.
- `progress` and `coverage`: counts, and what they mean for completion and early failure.
- `outcomes` and `fanout`: recording finished attempts, and choosing the cells to start.
- `jobs`: the batch/v1 Job of one attempt.
- `conditions`, `cell_events`, `study_status`: what the new status and the events say.
- `running_time`, `deadlines` and `escalation`: time spent running, the deadline's figures and
  the at-risk rule, and what being at risk does (announcements by stage, parallelism boost).
- `intervention`: surfaces failing again and again, and resuming with `spec.interventionAck`.
- `notifications` and `notify`: the webhook messages a decision notes, and their wire format
  and delivery schedule.
- `decision` and `reconcile`: the decider and what it returns.
- `timestamps`: RFC 3339 as the status stores it.
"""

from bentham.core.checkpoint import Derived
from bentham.core.decision import Decision, JobToCreate, Notification, ObservedJob, StudyEvent
from bentham.core.reconcile import decide
from bentham.core.sightings import PodSighting, observed_jobs
from bentham.core.write_plan import Held, StoredStatus, WritePlan, plan_write, status_to_decide_from, stored_status

__all__ = [
    "Decision",
    "Derived",
    "Held",
    "JobToCreate",
    "Notification",
    "ObservedJob",
    "PodSighting",
    "StoredStatus",
    "StudyEvent",
    "WritePlan",
    "decide",
    "observed_jobs",
    "plan_write",
    "status_to_decide_from",
    "stored_status",
]
