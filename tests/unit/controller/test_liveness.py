"""/healthz's verdict: a silent API server or a worker stuck inside one pass makes the operator unhealthy."""

from __future__ import annotations

import asyncio

import urllib3
from kubernetes.client.rest import ApiException

from bentham.controller.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def liveness(clock: Clock, answer: list[BaseException | None], longest: tuple[str, float] | None = None) -> Liveness:
    async def ask() -> None:
        if answer[0] is not None:
            raise answer[0]

    return Liveness(ask, lambda now: longest, stall_after_s=45, clock=clock)


def test_an_api_server_that_stops_answering_makes_the_operator_unhealthy_after_the_limit() -> None:
    clock = Clock()
    answer: list[BaseException | None] = [None]
    probe = liveness(clock, answer)
    asyncio.run(probe.beat_once())
    answer[0] = urllib3.exceptions.ConnectTimeoutError("timed out")
    for _ in range(4):
        clock.now += 10
        asyncio.run(probe.beat_once())
    assert probe.problem() is None  # 40 s of silence: within the limit
    clock.now += 10
    asyncio.run(probe.beat_once())
    assert "has not answered for 50s" in (probe.problem() or "")

    answer[0] = None
    asyncio.run(probe.beat_once())
    assert probe.problem() is None


def test_an_error_status_is_an_answer() -> None:
    clock = Clock()
    answer: list[BaseException | None] = [ApiException(status=403, reason="Forbidden")]
    probe = liveness(clock, answer)
    clock.now += 100
    asyncio.run(probe.beat_once())
    assert probe.problem() is None


def test_a_worker_inside_one_pass_beyond_the_limit_makes_the_operator_unhealthy() -> None:
    clock = Clock()
    assert liveness(clock, [None], ("study ns/a", 44.0)).problem() is None
    problem = liveness(clock, [None], ("study ns/a", 46.0)).problem()
    assert problem is not None and "study ns/a" in problem and "inside one pass for 46s" in problem
