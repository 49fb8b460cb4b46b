#!/usr/bin/env python3
"""`make test`: the whole suite, with the end-to-end tests on the real node running beside it.

    python3 hack/test.py [PYTEST ARGS...]    (run by `make test` with .venv's Python)

The suite (tests/unit, tests/integration: pyproject.toml's testpaths) and tests/e2e share one
control plane, started here with the real node. They run at the same time: both spend most of
their time waiting on Jobs and pods, and one after the other they would not fit CI's time. They
cannot meet: the e2e's operator is the chart's Deployment, watching only `e2e-*` namespaces from
its own release namespace, while the suite's operators watch `t-*` or one `u-*` namespace each.

The suite prints as it runs; the e2e's output follows it. The exit code is non-zero when either
failed. A control plane started here is stopped again at the end, as the suite's own fixture
would; one that was already up is left up.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLUSTER = [sys.executable, str(REPO / "hack" / "cluster.py")]
PYTEST = [sys.executable, "-m", "pytest"]


def main() -> int:
    already_up = subprocess.run([*CLUSTER, "status"], capture_output=True).returncode == 0
    up = subprocess.run([*CLUSTER, "up", "--node", "real"], capture_output=True, text=True)
    if up.returncode != 0:
        print(f"test: the control plane with the real node did not start:\n{up.stderr}", file=sys.stderr)
        return up.returncode
    try:
        with tempfile.TemporaryFile(mode="w+") as e2e_output:
            e2e = subprocess.Popen(
                [*PYTEST, "tests/e2e", "-p", "no:randomly"], cwd=REPO, stdout=e2e_output, stderr=subprocess.STDOUT
            )
            try:
                suite = subprocess.run([*PYTEST, *sys.argv[1:]], cwd=REPO).returncode
            finally:
                e2e_code = e2e.wait()
            e2e_output.seek(0)
            print("\n=== tests/e2e (ran beside the suite) ===", flush=True)
            print(e2e_output.read(), flush=True)
    finally:
        if not already_up:
            subprocess.run([*CLUSTER, "down"], capture_output=True)
    print(f"test: suite exited {suite}, e2e exited {e2e_code}", flush=True)
    return suite or e2e_code


if __name__ == "__main__":
    sys.exit(main())
