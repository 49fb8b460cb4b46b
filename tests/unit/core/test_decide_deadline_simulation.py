"""A simulated study racing its deadline, with a shell that crashes: invariants hold on every step."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from core_builders import T0, Study, make_spec
from test_decide_simulation import FakeKwok

MAX_PARALLELISM = 6


def run(seed: int, *, deadline_hours: float, weights: list[int]) -> tuple[Study, list[str], list[str]]:
    spec = make_spec(
        queries=6,
        surfaces=("openai-api", "grok", "meta-ai"),
        locations=("us-nyc", "uk-lon"),
        optional=("meta-ai",),
        threshold=0.5,
        parallelism=2,
        min_length=100,
        deadline=(T0 + timedelta(hours=deadline_hours)).isoformat(),
    )
    spec["executor"]["maxParallelism"] = MAX_PARALLELISM
    study = Study(spec)
    kwok = FakeKwok(seed, weights)
    rng = random.Random(seed)
    sent: list[str] = []
    events: list[str] = []
    now = 0.0
    for _ in range(3_000):
        kwok.tick(study, now)
        moment = T0 + timedelta(seconds=now)
        decision = study.decide(moment)
        assert study.decide(moment) == decision  # deterministic
        crash = rng.random()
        for job in decision.create if crash >= 0.1 else []:
            kwok.create(study, job, now)
        if crash >= 0.2:  # the status was written: only then are events and notifications sent
            study.status = decision.status
            for name in decision.delete:
                study.jobs.pop(name, None)
            sent += [n.id for n in decision.notifications]
            events += [e.reason for e in decision.events]
            again = study.decide(moment)
            assert again.notifications == [] and again.status == decision.status
        assert sum(j.phase == "running" for j in study.jobs.values()) <= MAX_PARALLELISM
        if study.state in ("complete", "failed", "human_intervention_required") and not study.running_jobs():
            break
        now += rng.uniform(1, 120)
    return study, sent, events


@pytest.mark.parametrize("seed", range(6))
def test_a_tight_deadline_escalates_once_per_stage_and_never_notifies_twice(seed: int) -> None:
    study, sent, events = run(seed, deadline_hours=0.15, weights=[75, 5, 10, 5, 0, 5])
    assert [i for i, count in Counter(sent).items() if count > 1] == []
    assert "AtRisk" in events and "ParallelismRaised" in events
    stretches: dict[str, list[int]] = {}
    for note in (i for i in sent if ":study.at_risk:" in i):
        since, stage = note.split(":study.at_risk:")[1].rsplit(":", 1)
        stretches.setdefault(since, []).append(int(stage))
    assert all(stages == sorted(set(stages)) for stages in stretches.values()), stretches
    assert events.count("AtRisk") == sum(len(stages) for stages in stretches.values())
    assert study.state in ("complete", "human_intervention_required", "failed")


@pytest.mark.parametrize("seed", range(6))
def test_a_generous_deadline_is_never_at_risk(seed: int) -> None:
    study, sent, events = run(seed, deadline_hours=48, weights=[90, 2, 4, 2, 0, 2])
    assert study.state == "complete"
    assert not [i for i in sent if ":study.at_risk:" in i] and "ParallelismRaised" not in events
    assert sum(1 for i in sent if i.endswith(":study.completed")) == 1
