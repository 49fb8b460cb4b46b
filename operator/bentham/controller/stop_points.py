"""Stop points for the chaos tests: the operator can freeze itself at the moments a crash is riskiest.

With `BENTHAM_TEST_STOP_AT=<point>:<n>` in its environment, the process sends itself SIGSTOP
the n-th time it reaches `<point>`, and carries on from there if it is ever sent SIGCONT. A test
waits for the process to stop (its state in /proc) and then kills it (`tests/integration/
test_chaos_windows.py`) or lets a standby take over before waking it (`test_fencing.py`), so
the kill or the pause lands exactly in the window it is aimed at rather than somewhere at random.

The points:

- `jobs-created`: a pass has just created its Jobs; the status that records them running is
  either already written (this pass's) or still held (`core.pacing`), and nothing later in the pass
  has gone out.
- `status-write`: a decided status is about to be written.

Unset, as it is everywhere but in those tests, `reached()` only finds that nothing is armed.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

log = logging.getLogger(__name__)

ENVIRONMENT = "BENTHAM_TEST_STOP_AT"
POINTS = frozenset({"jobs-created", "status-write"})


def _armed(setting: str) -> tuple[str, int] | None:
    if not setting:
        return None
    point, _, nth = setting.partition(":")
    if point not in POINTS or not nth.isdigit() or int(nth) < 1:
        raise ValueError(f"{ENVIRONMENT}={setting!r}: expected <point>:<n> with point one of {sorted(POINTS)}, n ≥ 1")
    return point, int(nth)


_ARMED = _armed(os.environ.get(ENVIRONMENT, ""))
_reached: Counter[str] = Counter()


def reached(point: str) -> None:
    """Marks that the operator reached `point`; stops the process there if the test armed it for this time."""
    if _ARMED is None or _ARMED[0] != point:
        return
    _reached[point] += 1
    if _reached[point] == _ARMED[1]:
        log.warning("test stop point %s reached (time %d): stopping this process", point, _ARMED[1])
        os.kill(os.getpid(), signal.SIGSTOP)
