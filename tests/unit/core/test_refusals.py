"""Job creations the API server refused: a failed attempt, a study waiting on a quota, a name someone else took."""

from __future__ import annotations

from core_builders import UID, Study, at, make_spec, running

from bentham.core.checkpoint import CellState, read_records
from bentham.core.decision import JobToCreate
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID
from bentham.core.refusals import (
    JOB_NAME_TAKEN,
    JOB_REJECTED,
    JOBS_REJECTED,
    NOTHING_ASKED,
    QUOTA_EXCEEDED,
    WAITING_RETRY_S,
    CreateAnswer,
    CreateReport,
    note_creations,
    refusal_of,
    rejected_attempts,
)
from bentham.core.write_plan import plan_write

INVALID = 'Job.batch "x" is invalid: spec.template.spec.containers[0].env[0].name: Invalid value: "1BAD"'
QUOTA = 'jobs.batch "x" is forbidden: exceeded quota: no-jobs, requested: count/jobs.batch=1, used: count/jobs.batch=0'


def ours(job: JobToCreate, **labels: str) -> dict[str, object]:
    """The metadata of the Job a 409 names: this attempt's own, unless `labels` say otherwise."""
    own = {LABEL_STUDY_UID: UID, LABEL_CELL_INDEX: str(job.cell.index), LABEL_ATTEMPT: str(job.attempt)}
    return {"name": job.name, "labels": {**own, **labels}, "ownerReferences": [{"uid": UID, "controller": True}]}


class Carried(Study):
    """A study whose worker also carries out creations, told what the API server answered."""

    created: CreateReport = NOTHING_ASKED

    def pass_(self, now_s: float, answer: CreateAnswer | None = None) -> list[JobToCreate]:
        """One pass: decide (told the last report), write, create; every creation gets `answer` (None: created)."""
        now = at(now_s)
        decided = self.decide(now, jobs=[*self.jobs.values(), *rejected_attempts(self.created)])
        decision = note_creations(decided.decision, self.created, generation=self.generation, now=now)
        plan = plan_write(self.stored, self.held, decision, since_last_write=1e9, interval=0.0)
        if plan.write is not None:
            self.status = plan.write.as_stored()
        self.held = plan.held
        self.events = [*getattr(self, "events", []), *plan.events]
        for name in plan.delete:
            self.jobs.pop(name, None)
        refusals = []
        for job in plan.create:
            refusal = refusal_of(job, answer, study_uid=self.uid) if answer is not None else None
            if refusal is None:
                self.jobs.setdefault(job.name, running(job))
            else:
                refusals.append(refusal)
        self.created = CreateReport(len(plan.create), tuple(refusals))
        self.deleted = [*getattr(self, "deleted", []), *plan.delete]
        return plan.create


def cells(study: Study) -> list[tuple[CellState, int]]:
    assert study.status is not None
    records = read_records(study.decide().decision.status.checkpoint)
    assert records is not None
    return [(record.state, record.attempts) for record in records]


def test_an_invalid_job_fails_its_attempt_as_job_rejected_without_a_retry() -> None:
    study = Carried(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",), max_retries=3))
    study.pass_(0, CreateAnswer(422, INVALID))
    study.pass_(1)

    assert cells(study) == [(CellState.FAILED, 1)]
    assert study.state == "failed"  # the only required cell can never complete
    condition = study.condition(JOBS_REJECTED)
    assert (condition["status"], condition["reason"]) == ("True", JOB_REJECTED)
    assert INVALID in condition["message"]
    failed_events = [e for e in study.events if e.reason == "CellsFailed"]
    assert len(failed_events) == 1 and JOB_REJECTED in failed_events[0].message and "1BAD" in failed_events[0].message
    assert [e.reason for e in study.events].count(JOB_REJECTED) == 1


def test_a_quota_refusal_spends_no_attempt_shows_the_condition_and_asks_again_until_it_is_lifted() -> None:
    study = Carried(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",), max_retries=2))
    [first] = study.pass_(0, CreateAnswer(403, QUOTA))
    for second in range(1, 6):  # the quota stays: the same attempt is asked for again, and again
        assert [job.name for job in study.pass_(second, CreateAnswer(403, QUOTA))] == [first.name]
    assert cells(study) == [(CellState.RUNNING, 1)]
    condition = study.condition(JOBS_REJECTED)
    assert (condition["status"], condition["reason"]) == ("True", QUOTA_EXCEEDED)
    assert "exceeded quota" in condition["message"]
    assert [e.reason for e in study.events].count(QUOTA_EXCEEDED) == 1  # announced once, not every pass
    decided = study.decide(at(7), jobs=[])
    again = note_creations(decided.decision, study.created, generation=1, now=at(7))
    assert again.requeue_after is not None and again.requeue_after <= WAITING_RETRY_S

    study.pass_(7)  # the quota is lifted: created at last
    study.pass_(8)
    assert study.condition(JOBS_REJECTED)["status"] == "False"
    assert cells(study) == [(CellState.RUNNING, 1)] and list(study.jobs) == [first.name]


def test_a_409_from_this_attempts_own_job_is_no_refusal() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.decide().create
    assert refusal_of(job, CreateAnswer(409, "exists", ours(job)), study_uid=UID) is None
    assert refusal_of(job, CreateAnswer(409, "exists", None), study_uid=UID) is None  # gone since: ask again


def test_a_squatted_name_fails_the_attempt_names_the_job_and_is_never_deleted() -> None:
    study = Carried(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",), max_retries=3))
    [job] = study.decide().create
    squatter = {"name": job.name, "labels": {"app": "squatter"}}
    refusal = refusal_of(job, CreateAnswer(409, "exists", squatter), study_uid=UID)
    assert refusal is not None and refusal.reason == JOB_NAME_TAKEN
    assert job.name in refusal.message and LABEL_STUDY_UID in refusal.message

    study.pass_(0, CreateAnswer(409, "exists", squatter))
    study.pass_(1)
    assert cells(study)[0][0] is CellState.RETRY_WAIT
    assert study.condition(JOBS_REJECTED)["reason"] == JOB_NAME_TAKEN
    [retry] = [j for s in range(2, 40) for j in study.pass_(s) if j.attempt == 2][:1]  # after its backoff
    assert retry.name != job.name
    assert job.name not in study.deleted  # not ours: never deleted
    assert study.condition(JOBS_REJECTED)["status"] == "False"  # the next attempt's Job was created


def test_a_job_of_another_attempt_or_another_owner_holding_the_name_is_not_ours() -> None:
    study = Study(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    [job] = study.decide().create
    for holder in (
        ours(job, **{LABEL_ATTEMPT: "2"}),
        ours(job, **{LABEL_CELL_INDEX: "5"}),
        ours(job, **{LABEL_STUDY_UID: "another-uid"}),
        {**ours(job), "ownerReferences": [{"uid": "someone-else", "controller": True}]},
    ):
        refusal = refusal_of(job, CreateAnswer(409, "exists", holder), study_uid=UID)
        assert refusal is not None and refusal.kind == "name_taken", holder


def test_a_pass_that_creates_nothing_leaves_the_condition_as_it_was() -> None:
    study = Carried(make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",)))
    study.pass_(0, CreateAnswer(403, QUOTA))
    study.pass_(1, CreateAnswer(403, QUOTA))
    decided = study.decide(at(2))
    unchanged = note_creations(decided.decision, NOTHING_ASKED, generation=1, now=at(2))
    assert unchanged.status.conditions == decided.decision.status.conditions
