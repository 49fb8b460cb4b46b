from __future__ import annotations

import itertools

import pytest

from bentham.api.status import StudyState as S
from bentham.core.states import ALLOWED_MOVES, TERMINAL_STATES, IllegalTransition, can_move, is_terminal, move

EXPECTED: dict[S, set[S]] = {
    S.MANIFEST_RECEIVED: {S.VALIDATING, S.FAILED},
    S.VALIDATING: {S.QUEUED, S.FAILED},
    S.QUEUED: {S.EXECUTING, S.FAILED, S.PAUSED},
    S.EXECUTING: {S.VALIDATING_RESULTS, S.PAUSED, S.HUMAN_INTERVENTION_REQUIRED, S.FAILED},
    S.VALIDATING_RESULTS: {S.COMPLETE, S.EXECUTING, S.FAILED},
    S.PAUSED: {S.EXECUTING, S.FAILED},
    S.HUMAN_INTERVENTION_REQUIRED: {S.EXECUTING, S.PAUSED, S.FAILED},
}


def allowed(source: S, target: S) -> bool:
    if source in (S.COMPLETE, S.FAILED, S.CANCELLED):
        return False
    return target in EXPECTED[source] or target is S.CANCELLED


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states_is_allowed_exactly_as_documented(source: S, target: S) -> None:
    if allowed(source, target):
        assert can_move(source, target)
        assert move(source, target) is target
    else:
        assert not can_move(source, target)
        with pytest.raises(IllegalTransition) as raised:
            move(source, target)
        assert raised.value.source is source and raised.value.target is target
        assert source.value in str(raised.value) and target.value in str(raised.value)


def test_complete_failed_and_cancelled_are_the_terminal_states() -> None:
    assert {s for s in S if is_terminal(s)} == {S.COMPLETE, S.FAILED, S.CANCELLED} == TERMINAL_STATES
    assert all(not ALLOWED_MOVES[s] for s in TERMINAL_STATES)


def test_every_live_state_can_be_cancelled() -> None:
    assert all(can_move(s, S.CANCELLED) for s in S if s not in TERMINAL_STATES)


def test_a_study_created_paused_waits_in_paused_and_resumes_to_executing() -> None:
    assert can_move(S.QUEUED, S.PAUSED) and can_move(S.PAUSED, S.EXECUTING)
    assert not can_move(S.PAUSED, S.QUEUED)
