"""The operator's event loop: uvloop unless told otherwise, and a clear refusal of one it does not know."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from bentham.__main__ import main, use_event_loop


@pytest.fixture(autouse=True)
def standard_policy_after() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)


def loop_made() -> asyncio.AbstractEventLoop:
    """The loop `asyncio.run` (what kopf.run calls) would run on now."""
    loop = asyncio.new_event_loop()
    loop.close()
    return loop


def test_uvloop_is_the_loop_kopf_runs_on() -> None:
    assert use_event_loop("uvloop") == "uvloop"
    assert isinstance(loop_made(), uvloop.Loop)


def test_asyncio_s_own_loop_when_asked_for() -> None:
    use_event_loop("uvloop")

    assert use_event_loop("asyncio") == "asyncio"
    assert not isinstance(loop_made(), uvloop.Loop)


def test_the_operator_does_not_start_with_an_event_loop_it_does_not_know(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENTHAM_EVENT_LOOP", "trio")

    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "--event-loop (BENTHAM_EVENT_LOOP): 'trio' is not one of uvloop, asyncio" in capsys.readouterr().err
