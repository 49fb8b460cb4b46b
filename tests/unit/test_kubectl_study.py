"""`kubectl study`'s views, from plain objects: bars, the status page, the cell table, the watch loop."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bentham.api.spec import StudySpec
from bentham.api.status import CellCounts, Checkpoint
from bentham.cli.kubectl_study import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_STUDY_NOT_COMPLETE,
    PluginError,
    cells_view,
    main,
    parser,
    watch,
)
from bentham.cli.render import bar, cell_rows, duration, percent, relative, render_cells, render_status, select_cells
from bentham.core.checkpoint import CellRecord, CellState, pack_cells
from bentham.core.progress import progress_of
from tests.support import study

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def counts(completed: int = 0, failed: int = 0, executing: int = 0, pending: int = 0) -> CellCounts:
    return CellCounts(
        total=completed + failed + executing + pending,
        completed=completed,
        failed=failed,
        executing=executing,
        pending=pending,
    )


def study_with(records: list[CellRecord], state: str = "executing", **status: Any) -> dict[str, Any]:
    """A Study (2 queries x openai-api, grok (optional) x us-nyc, uk-lon) whose status holds `records`."""
    body = study("demo", required=("openai-api",), optional=("grok",))
    body["metadata"]["namespace"] = "acme"
    manifest = StudySpec.model_validate(body["spec"]).manifest
    body["status"] = {
        "state": state,
        "progress": progress_of(manifest, records).model_dump(),
        "checkpoint": Checkpoint(
            sequence=1,
            timestamp="2030-01-01T11:59:00.000Z",
            cells=pack_cells(records, base=datetime(2030, 1, 1, 11, 59, tzinfo=UTC)),
        ).model_dump(),
        **status,
    }
    return body


DONE, FAILED, RUNNING, PENDING = (
    CellRecord(CellState.COMPLETED, 1),
    CellRecord(CellState.FAILED, 3),
    CellRecord(CellState.RUNNING, 1),
    CellRecord(),
)
# Cells in index order: q0 openai-api us-nyc, uk-lon; q0 grok us-nyc, uk-lon; then q1 likewise.
RECORDS = [DONE, DONE, FAILED, RUNNING, DONE, PENDING, PENDING, PENDING]


def test_bar_gives_each_kind_of_cell_its_share_of_the_width() -> None:
    assert bar(counts(completed=1, failed=1, executing=1, pending=1), width=8) == "[##xx>>..]"
    assert bar(counts(completed=4), width=8) == "[########]"


def test_bar_always_fills_its_width_by_largest_remainder() -> None:
    for parts in [(1, 1, 1, 0), (2, 0, 1, 4), (1, 0, 0, 6), (0, 0, 0, 1)]:
        drawn = bar(counts(*parts), width=10)
        assert len(drawn) == 12, drawn
    assert bar(counts(completed=1, pending=2), width=10) == "[###.......]"


def test_bar_draws_skipped_cells_last() -> None:
    assert bar(CellCounts(total=4, completed=2, skipped=2), width=4) == "[##--]"


def test_status_shows_skipped_cells_overall_and_per_slice() -> None:
    records = [CellRecord(CellState.COMPLETED, 1)] * 4 + [CellRecord(CellState.SKIPPED, 0)] * 4
    text = render_status(study_with(records), NOW)
    assert "4/8 completed (50%), 0 failed, 0 running, 0 pending, 4 skipped" in text
    assert "SKIPPED" in text and "- skipped" in text


def test_bar_of_an_empty_slice_is_blank() -> None:
    assert bar(counts(), width=4) == "[    ]"


def test_percent_rounds_down_so_only_all_cells_is_100() -> None:
    assert percent(199, 200) == "99%"
    assert percent(200, 200) == "100%"
    assert percent(0, 0) == "0%"


def test_durations_are_read_in_their_two_largest_units() -> None:
    assert [duration(s) for s in (5, 60, 3_660, 3 * 3600, 2 * 86_400 + 3 * 3600)] == [
        "5s",
        "1m",
        "1h 1m",
        "3h",
        "2d 3h",
    ]
    assert relative(NOW + timedelta(hours=3, minutes=12), NOW) == "in 3h 12m"
    assert relative(NOW - timedelta(minutes=5), NOW) == "5m ago"


def test_status_shows_state_overall_progress_and_each_surface_with_required_marked() -> None:
    text = render_status(study_with(RECORDS), NOW)

    assert "Study:     acme/demo  (tenant acme)" in text
    assert "State:     executing" in text
    assert "3/8 completed (37%), 1 failed, 1 running, 3 pending, 0 skipped" in text
    lines = text.splitlines()
    openai = next(line for line in lines if line.startswith("openai-api"))
    grok = next(line for line in lines if line.startswith("grok"))
    assert openai.split()[:2] == ["openai-api", "*"]
    assert grok.split()[0] == "grok" and "*" not in grok
    assert openai.split()[-7:] == ["75%", "3", "0", "0", "1", "0", "4"]
    assert grok.split()[-7:] == ["0%", "0", "1", "1", "2", "0", "4"]
    us_nyc = next(line for line in lines if line.startswith("us-nyc"))
    assert us_nyc.split()[-6:] == ["2", "1", "0", "1", "0", "4"]
    assert "* required" in text


def test_status_shows_deadline_rates_projection_and_risk_when_tracked() -> None:
    deadline = {
        "deadline": "2030-01-01T15:00:00Z",
        "currentRate": 12.5,
        "requiredRate": 20.0,
        "projectedCompletion": "2030-01-01T16:30:00Z",
        "bottleneckSurface": "openai-api",
        "atRisk": True,
    }

    text = render_status(study_with(RECORDS, deadline=deadline), NOW)

    assert "Deadline:  2030-01-01T15:00:00Z (in 3h)  AT RISK" in text
    assert "rate 12.5 cells/h, needed 20.0 cells/h, projected finish 2030-01-01T16:30:00Z (in 4h 30m)" in text
    assert "bottleneck openai-api" in text


def test_status_says_when_the_study_time_out_sets_the_deadline() -> None:
    deadline = {"deadline": "2030-01-01T13:00:00Z", "setBy": "studyTimeout", "atRisk": False}

    text = render_status(study_with(RECORDS, deadline=deadline), NOW)

    assert "Deadline:  2030-01-01T13:00:00Z (in 1h)  (the study time-out: running time, paused time excluded)" in text


def test_status_shows_retention_and_legal_hold_from_the_manifest() -> None:
    body = study_with(RECORDS)
    body["spec"]["manifest"] |= {"retentionDays": 2555, "legalHold": True}
    assert "Retention: 2555 days, under legal hold (the Study cannot be deleted until the hold is lifted)" in (
        render_status(body, NOW)
    )
    body["spec"]["manifest"] |= {"preserveForever": True, "legalHold": False}
    assert "Retention: kept forever\n" in render_status(body, NOW)
    assert "Retention" not in render_status(study_with(RECORDS), NOW)


def test_status_of_a_study_without_deadline_or_status_says_only_what_is_known() -> None:
    body = study("fresh")
    body["metadata"]["namespace"] = "acme"

    text = render_status(body, NOW)

    assert "not yet seen by the operator" in text
    assert "Deadline" not in text and "SURFACE" not in text


def test_status_lists_true_conditions_with_their_reasons() -> None:
    conditions = [
        {"type": "Failed", "status": "True", "reason": "RequiredSurfaceUnreachable", "lastTransitionTime": "x"},
        {"type": "Complete", "status": "False", "reason": "Failed", "lastTransitionTime": "x"},
    ]
    text = render_status(study_with(RECORDS, state="failed", conditions=conditions), NOW)

    assert "Conditions: Failed (RequiredSurfaceUnreachable)" in text
    assert "Complete (" not in text


def test_cell_rows_decode_the_checkpoint_with_each_cells_coordinates() -> None:
    manifest = StudySpec.model_validate(study_with(RECORDS)["spec"]).manifest

    rows = cell_rows(manifest, RECORDS)

    assert [(r.index, r.key, r.query_index, r.surface, r.location, r.state, r.attempts) for r in rows[:4]] == [
        (0, "q0-openai-api-us-nyc", 0, "openai-api", "us-nyc", "completed", 1),
        (1, "q0-openai-api-uk-lon", 0, "openai-api", "uk-lon", "completed", 1),
        (2, "q0-grok-us-nyc", 0, "grok", "us-nyc", "failed", 3),
        (3, "q0-grok-uk-lon", 0, "grok", "uk-lon", "running", 1),
    ]
    assert rows[7].key == "q1-grok-uk-lon"


def test_cell_filters_combine() -> None:
    manifest = StudySpec.model_validate(study_with(RECORDS)["spec"]).manifest
    rows = cell_rows(manifest, RECORDS)

    assert [r.index for r in select_cells(rows, surface="grok")] == [2, 3, 6, 7]
    assert [r.index for r in select_cells(rows, surface="grok", state="pending")] == [6, 7]
    assert [r.index for r in select_cells(rows, location="us-nyc", state="completed")] == [0, 4]


def test_cell_table_has_a_header_a_line_per_cell_and_a_count() -> None:
    manifest = StudySpec.model_validate(study_with(RECORDS)["spec"]).manifest
    rows = select_cells(cell_rows(manifest, RECORDS), state="failed")

    lines = render_cells(rows, 8, NOW).splitlines()

    assert lines[0].split() == ["INDEX", "CELL", "QUERY", "SURFACE", "LOCATION", "STATE", "ATTEMPTS"]
    assert lines[1].split() == ["2", "q0-grok-us-nyc", "0", "grok", "us-nyc", "failed", "3"]
    assert lines[-1] == "1 of 8 cells"


def test_cell_table_shows_when_waiting_cells_retry() -> None:
    waiting = [DONE, CellRecord(CellState.RETRY_WAIT, 2, NOW + timedelta(seconds=30)), *RECORDS[2:]]
    manifest = StudySpec.model_validate(study_with(waiting)["spec"]).manifest

    lines = render_cells(select_cells(cell_rows(manifest, waiting), state="retry_wait"), 8, NOW).splitlines()

    assert lines[0].split()[-1] == "RETRY"
    assert lines[1].split()[-4:] == ["retry_wait", "2", "in", "30s"]


def test_cell_table_says_when_nothing_matches() -> None:
    assert render_cells([], 8, NOW) == "No cells match (the study has 8).\n"


def test_cells_view_refuses_a_surface_the_study_does_not_have() -> None:
    with pytest.raises(PluginError, match="no surface 'perplexity-web'; it has openai-api, grok"):
        cells_view(study_with(RECORDS), None, "perplexity-web", None, NOW)


def test_cells_view_of_a_study_without_checkpoint_lists_every_cell_pending() -> None:
    body = study("fresh")

    text = cells_view(body, None, None, None, NOW)

    assert text.count(" pending ") == 4 and text.endswith("4 of 4 cells\n")


def frames(*bodies: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from bodies


def test_watch_redraws_on_change_and_exits_0_once_complete() -> None:
    running, done = study_with(RECORDS), study_with([DONE] * 8, state="complete")
    reads = frames(running, running, done)
    out, sleeps = io.StringIO(), list[float]()

    code = watch(lambda: next(reads), 2.0, out, lambda: NOW, sleeps.append)

    assert code == EXIT_OK
    assert sleeps == [2.0, 2.0]
    assert out.getvalue().count("State:") == 2, "an unchanged frame is not printed again when not on a terminal"
    shown = out.getvalue()
    assert shown.index("State:     executing") < shown.index("State:     complete")


def test_watch_exits_2_when_the_study_fails() -> None:
    failed = study_with(RECORDS, state="failed")

    assert watch(lambda: failed, 2.0, io.StringIO(), lambda: NOW, lambda _: None) == EXIT_STUDY_NOT_COMPLETE


def test_command_line_takes_flags_after_the_name_as_kubectl_users_type_them() -> None:
    args = parser().parse_args(["cells", "demo", "-n", "acme", "--state", "failed", "--surface", "grok"])

    assert (args.command, args.name, args.namespace, args.state, args.surface) == (
        "cells",
        "demo",
        "acme",
        "failed",
        "grok",
    )


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny-study.yaml"


def run_plugin(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_estimate_prints_the_cells_the_range_and_each_surface_without_a_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # it must not even look for one

    code, out, _ = run_plugin(["estimate", "-f", str(EXAMPLE)], capsys)

    # examples/tiny-study.yaml: 2 queries x (openai-api gpt-4o, perplexity-api) x 2 locations; 4 cells a surface.
    #   openai-api gpt-4o: 50/1000 x 0.0025 + 500/1000 x 0.01 = 0.005125; x4 = 0.0205 -> 0.02; x0.8 0.016 -> 0.02;
    #                      x1.3 0.026 -> 0.03
    #   perplexity-api sonar: 0.00555; x4 = 0.0222 -> 0.02; -> 0.02 and 0.03 likewise
    #   base 0.0205 + 0.0222 = 0.0427 -> 0.04; x0.8 = 0.032 -> 0.03; x1.3 = 0.052 -> 0.05
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[:3] == [
        "Study:     tiny-study",
        "Cells:     2 queries x 2 surfaces x 2 locations = 8",
        "Estimate:  $0.03 - $0.05 USD",
    ]
    assert next(line for line in lines if line.startswith("openai-api")).split() == [
        "openai-api", "gpt-4o", "$0.005125", "4", "$0.02", "$0.03",
    ]  # fmt: skip
    assert next(line for line in lines if line.startswith("perplexity-api")).split() == [
        "perplexity-api", "sonar", "$0.00555", "4", "$0.02", "$0.03",
    ]  # fmt: skip


def test_estimate_shows_the_adjustments_and_marks_what_the_table_does_not_price(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = study("adjusted", required=("grok",), locations=("us-nyc",), queries=10, evidenceLevel="full")
    body["spec"]["manifest"]["locations"][0]["proxyType"] = "mobile"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body))

    code, out, _ = run_plugin(["estimate", "-f", str(path)], capsys)

    # 10 cells x 0.01 = 0.10; x1.2 (mobile) x1.1 (full) = 0.132; x0.8 = 0.1056 -> 0.11; x1.3 = 0.1716 -> 0.17
    assert code == EXIT_OK
    assert "Estimate:  $0.11 - $0.17 USD" in out
    assert "Adjusted:  x1.32 (a location uses a mobile proxy; evidenceLevel is full)" in out
    assert next(line for line in out.splitlines() if line.startswith("grok")).split()[:3] == ["grok", "-", "*"]
    assert "* not in the pricing table" in out


def test_estimate_prices_from_the_table_given_as_the_operator_would(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text("surfaces: {openai-api: {defaultModel: gpt-4o, models: {gpt-4o: {requestUsd: 1}}}}\n")

    code, out, _ = run_plugin(["estimate", "-f", str(EXAMPLE), "--pricing", str(pricing)], capsys)

    # openai-api: 4 cells x $1 = 4.00; perplexity-api as built in: 0.0222; base 4.0222 -> 4.02; x0.8 = 3.216 -> 3.22;
    # x1.3 = 5.226 -> 5.23
    assert code == EXIT_OK
    assert "Estimate:  $3.22 - $5.23 USD" in out


def test_estimate_of_an_invalid_study_names_each_field_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = study("broken")
    body["spec"]["manifest"]["queries"] = []
    body["spec"]["manifest"]["surfaces"][0]["id"] = "openai"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(body))

    code, out, err = run_plugin(["estimate", "-f", str(path)], capsys)

    assert code == EXIT_ERROR and out == ""
    assert "study broken: the spec is invalid" in err
    assert "spec.manifest.queries:" in err
    assert "spec.manifest.surfaces[0].id:" in err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "holds no Study"),
        ("kind: Study\nmetadata: {name: x}\n", "study x: spec: a Study needs a spec"),
        ("kind: [Study\n", "is not YAML"),
    ],
)
def test_estimate_refuses_a_file_without_a_readable_study(
    text: str, says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(text)

    code, _, err = run_plugin(["estimate", "-f", str(path)], capsys)

    assert code == EXIT_ERROR and says in err


def test_estimate_refuses_an_unusable_pricing_file_naming_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text("rangeHighMultiplier: -1\n")

    code, _, err = run_plugin(["estimate", "-f", str(EXAMPLE), "--pricing", str(pricing)], capsys)

    assert code == EXIT_ERROR and "rangeHighMultiplier" in err and str(pricing) in err


def test_status_shows_the_reported_cost_against_the_estimate() -> None:
    body = study_with(
        RECORDS,
        estimate={"cells": 8, "minUsd": 0.1, "maxUsd": 0.17, "bySurface": {}},
        cost={"totalUsd": 0.0456, "bySurface": {"openai-api": 0.0456}, "attempts": 3},
    )

    assert "Cost:      $0.0456 reported by 3 attempts; estimated $0.10-$0.17" in render_status(body, NOW)
    assert "Cost:" not in render_status(study_with(RECORDS), NOW)


def test_status_shows_each_surfaces_reported_cost_beside_its_estimate() -> None:
    share = {"model": "m", "listed": True, "perRequestUsd": 0.01, "cells": 4}
    body = study_with(
        RECORDS,
        estimate={
            "cells": 8,
            "minUsd": 0.1,
            "maxUsd": 0.17,
            "bySurface": {
                "openai-api": {**share, "minUsd": 0.04, "maxUsd": 0.07},
                "anthropic-api": {**share, "minUsd": 0.06, "maxUsd": 0.1},
            },
        },
        cost={"totalUsd": 0.0456, "bySurface": {"openai-api": 0.0456}, "attempts": 3},
    )

    rendered = render_status(body, NOW)

    lines = rendered.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SURFACE") and "REPORTED" in line)
    table = lines[start : start + 3]
    assert table == [
        "SURFACE        REPORTED    ESTIMATED",
        "openai-api      $0.0456  $0.04-$0.07",
        "anthropic-api     $0.00  $0.06-$0.10",
    ]
    assert "REPORTED" not in render_status(study_with(RECORDS), NOW)
