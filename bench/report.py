"""The benchmark's table and its targets, from the results of one run.

python -m bench.report bench/results/latest.json    print the table of a saved run
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Result = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, judged on one scenario's result."""

    scenario: str
    what: str
    value: float | None
    limit: float
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value is not None and self.value <= self.limit

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.3g}{self.unit}"
        verdict = "met   " if self.met else "MISSED"
        return f"{verdict}  {self.scenario}: {self.what} {value} (target ≤ {self.limit:g}{self.unit})"


# (scenario, what, result field, limit, unit): the targets, at full size only.
TARGETS: tuple[tuple[str, str, str, float, str], ...] = (
    ("3k", "wall-time ratio to the baseline", "wall_ratio", 1.3, ""),
    ("10k", "wall-time ratio to the baseline", "wall_ratio", 1.3, ""),
    ("3k", "status writes per cell", "status_writes_per_cell", 0.1, ""),
    ("10k", "status writes per cell", "status_writes_per_cell", 0.1, ""),
    ("20x500", "status writes per cell", "status_writes_per_cell", 0.1, ""),
    ("10k", "operator peak RSS", "peak_rss_mb", 250, " MB"),
    ("3k", "apply → first Job", "first_job_s", 2, " s"),
    ("10k", "apply → first Job", "first_job_s", 2, " s"),
    ("20x500", "apply → first Job (slowest study)", "first_job_s", 2, " s"),
    ("10k", "Study object size", "study_kib", 100, " KiB"),
)


# The whole run, every scenario beside its baseline, in minutes.
RUN_MINUTES = 20.0


def targets(results: Sequence[Result], duration_s: float | None = None) -> list[Target]:
    """The targets of every full-size scenario in `results` (scaled runs judge nothing).

    With the run's duration, and every scenario run at full size, the run's own target too.
    """
    by_scenario = {r["scenario"]: r for r in results if r["kind"] == "operator" and r.get("scale", 1) == 1}
    judged = [
        Target(scenario, what, by_scenario[scenario].get(field), limit, unit)
        for scenario, what, field, limit, unit in TARGETS
        if scenario in by_scenario
    ]
    if duration_s is not None and by_scenario.keys() >= {scenario for scenario, *_ in TARGETS}:
        judged.append(Target("run", "every scenario and its baseline", duration_s / 60, RUN_MINUTES, " min"))
    return judged


def _number(digits: int) -> Callable[[Any], str]:
    def show(value: Any) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    return show


# (header, field of the operator's result, format); `base.` reads the paired baseline's result.
COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("scenario", "scenario", str),
    ("cells", "cells", _number(0)),
    ("baseline s", "baseline_wall_s", _number(1)),
    ("operator s", "wall_s", _number(1)),
    ("ratio", "wall_ratio", _number(2)),
    ("cells/s", "cells_per_s", _number(1)),
    ("status writes/cell", "status_writes_per_cell", _number(4)),
    ("API req/cell", "api_requests_per_cell", _number(1)),
    ("baseline API req/cell", "base.api_requests_per_cell", _number(1)),
    ("operator writes/cell", "operator_writes_per_cell", _number(2)),
    ("peak RSS MB", "peak_rss_mb", _number(0)),
    ("CPU s/1k cells", "cpu_s_per_1000_cells", _number(1)),
    ("Study KiB", "study_kib", _number(1)),
    ("first Job s", "first_job_s", _number(2)),
)


def table(results: Sequence[Result]) -> str:
    """A Markdown table: one row per scenario, the operator's numbers beside its baseline's."""
    baselines = {r["scenario"]: r for r in results if r["kind"] == "baseline"}
    rows = []
    for result in (r for r in results if r["kind"] == "operator"):
        base = baselines.get(result["scenario"], {})
        cells = []
        for _, field, show in COLUMNS:
            source, key = (base, field[5:]) if field.startswith("base.") else (result, field)
            cells.append(show(source.get(key)))
        rows.append(cells)
    header = [name for name, _, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary(results: Sequence[Result], duration_s: float | None = None) -> str:
    """The table, then each target met or missed."""
    judged = targets(results, duration_s)
    parts = [table(results)]
    if judged:
        parts.append("\n".join(target.line() for target in judged))
    errors = [f"{r['kind']} {r['scenario']}: {r['error']}" for r in results if r.get("error")]
    if errors:
        parts.append("errors:\n" + "\n".join(errors))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="?", default=Path("bench/results/latest.json"))
    args = parser.parse_args(argv)
    run = json.loads(args.results.read_text())
    print(summary(run["results"], run.get("duration_s")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
