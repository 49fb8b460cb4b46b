#!/usr/bin/env python3
"""A stand-in executor: a real container that plays one surface's answer, for the end-to-end tests.

It does what docs/executor.md asks of an executor: reads the BENTHAM_* environment the operator
gives each attempt, writes one JSON result to /dev/termination-log and exits. It asks no surface;
its answer is made up from the query. How it behaves is chosen by the study's
`spec.executor.env`, so a test can make real containers fail in each way the operator judges:

    STAND_IN_BEHAVIOUR            pass (default) | fail | nothing | sleep
        pass     a passing result, exit 0
        fail     a result with success false (error TIMEOUT, retryable), exit 1
        nothing  no result at all, exit 0
        sleep    sleep an hour: the Job's activeDeadlineSeconds kills it
    STAND_IN_MISBEHAVE_ATTEMPTS   misbehave on attempts 1..N only, then pass (default: every attempt)
    STAND_IN_DELAY_SECONDS        wait this long before answering (default 0)

Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

RESULT_PATH = os.environ.get("STAND_IN_RESULT_PATH", "/dev/termination-log")


def answer(query: str, surface: str, location: str) -> str:
    return f"[{surface} in {location}] An answer to: {query}"


def main() -> int:
    attempt = int(os.environ.get("BENTHAM_ATTEMPT", "1"))
    behaviour = os.environ.get("STAND_IN_BEHAVIOUR", "pass")
    misbehave_until = int(os.environ.get("STAND_IN_MISBEHAVE_ATTEMPTS", "1000000"))
    if attempt > misbehave_until:
        behaviour = "pass"
    study, cell = os.environ.get("BENTHAM_STUDY", "?"), os.environ.get("BENTHAM_CELL", "?")
    print(f"stand-in executor: study {study} cell {cell} attempt {attempt}: {behaviour}", flush=True)
    time.sleep(float(os.environ.get("STAND_IN_DELAY_SECONDS", "0")))

    if behaviour == "sleep":
        time.sleep(3600)
        return 0
    if behaviour == "nothing":
        return 0
    started = time.monotonic()
    text = answer(
        os.environ.get("BENTHAM_QUERY_TEXT", ""),
        os.environ.get("BENTHAM_SURFACE", "?"),
        os.environ.get("BENTHAM_LOCATION", "?"),
    )
    result: dict[str, object]
    if behaviour == "fail":
        result = {"success": False, "error": {"code": "TIMEOUT", "message": "the stand-in was told to fail"}}
    elif behaviour == "pass":
        digest = hashlib.sha256(text.encode()).hexdigest()
        result = {
            "success": True,
            "responseLength": len(text),
            "isActualContent": True,
            "responseTimeMs": int((time.monotonic() - started) * 1000),
            "evidence": [{"url": f"stand-in://{study}/{cell}/{attempt}", "sha256": digest}],
            "costUsd": 0.001,
        }
    else:
        print(f"stand-in executor: unknown STAND_IN_BEHAVIOUR {behaviour!r}", file=sys.stderr)
        return 2
    with open(RESULT_PATH, "w") as out:
        json.dump(result, out)
    return 0 if result["success"] else 1


if __name__ == "__main__":
    sys.exit(main())
