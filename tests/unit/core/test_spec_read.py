"""A spec is read once and kept while it stays the same (`core.spec_read`), and never past a change."""

from __future__ import annotations

from datetime import timedelta

from core_builders import T0, Study, make_spec

from bentham.api.spec import StudySpec
from bentham.api.validation import Invalid, Valid
from bentham.core.matrix import fingerprint_of
from bentham.core.spec_read import read_once


def test_the_same_spec_of_the_same_generation_is_not_read_again() -> None:
    spec = make_spec()
    first = read_once(spec, generation=3, created_at=T0, known=None)
    assert isinstance(first.judged, StudySpec)
    assert first.matrix == fingerprint_of(first.judged.manifest)
    assert read_once(make_spec(), generation=3, created_at=T0, known=first) is first  # equal, not the same dict


def test_a_new_generation_an_edit_in_place_or_another_creation_time_is_read_afresh() -> None:
    spec = make_spec(parallelism=10)
    first = read_once(spec, generation=1, created_at=T0, known=None)

    assert read_once(spec, generation=2, created_at=T0, known=first) is not first
    assert read_once(spec, generation=1, created_at=T0 + timedelta(seconds=1), known=first) is not first

    spec["executor"]["parallelism"] = 3  # the caller's dict edited where it lies: the kept copy tells
    again = read_once(spec, generation=1, created_at=T0, known=first)
    assert again is not first
    assert isinstance(again.judged, StudySpec) and again.judged.executor.parallelism == 3


def test_an_invalid_spec_keeps_its_errors_and_has_no_matrix() -> None:
    spec = make_spec()
    spec["manifest"]["queries"] = []
    read = read_once(spec, generation=1, created_at=T0, known=None)
    verdict = read.validation(now=T0)
    assert isinstance(verdict, Invalid) and read.matrix is None
    assert any(error.startswith("manifest.queries") for error in verdict.errors)
    assert read_once(spec, generation=1, created_at=T0, known=read) is not read  # judged again: not kept


def test_a_spec_nested_deeper_than_python_recurses_is_read_every_time_not_a_crash() -> None:
    spec = make_spec()
    deep: dict[str, object] = {}
    for _ in range(5000):
        deep = {"x": deep}
    spec["executor"]["env"] = [{"name": "A", "valueFrom": deep}]  # a free-form field
    read = read_once(spec, generation=1, created_at=T0, known=None)
    assert isinstance(read.judged, StudySpec)
    assert read_once(spec, generation=1, created_at=T0, known=read) is not read


def test_the_warnings_are_the_time_now_s_not_the_time_it_was_read() -> None:
    read = read_once(make_spec(deadline=(T0 + timedelta(hours=2)).isoformat()), generation=1, created_at=T0, known=None)
    early, late = read.validation(now=T0), read.validation(now=T0 + timedelta(hours=1, minutes=30))
    assert isinstance(early, Valid) and isinstance(late, Valid)
    assert "manifest.deadline: less than 1 hour away" not in early.warnings
    assert "manifest.deadline: less than 1 hour away" in late.warnings


def test_a_decision_takes_a_pause_made_in_place_though_it_kept_what_it_read() -> None:
    study = Study(make_spec())
    first = study.step()
    assert first.status["state"] == "executing" and first.decision.derived is not None
    assert first.decision.derived.spec is not None

    study.spec["paused"] = True  # the same generation: only the spec's content says it changed
    paused = study.decide(derived=first.decision.derived)
    assert paused.status["state"] == "paused" and paused.create == []
