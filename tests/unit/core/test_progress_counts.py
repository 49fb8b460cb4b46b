from __future__ import annotations

from core_builders import T0, manifest

from bentham.core.checkpoint import CellRecord, CellState, fresh_records
from bentham.core.progress import progress_of

COMPLETED = CellRecord(CellState.COMPLETED, 1)
FAILED = CellRecord(CellState.FAILED, 3)
RUNNING = CellRecord(CellState.RUNNING, 1)
WAITING = CellRecord(CellState.RETRY_WAIT, 1, T0)


def test_progress_counts_every_state_exactly() -> None:
    # 1 query x 2 surfaces x 2 locations: cells are (openai, nyc) (openai, lon) (grok, nyc) (grok, lon)
    m = manifest(queries=1, surfaces=("openai-api", "grok"), locations=("us-nyc", "uk-lon"), optional=("grok",))
    progress = progress_of(m, [COMPLETED, FAILED, RUNNING, WAITING])
    assert (
        progress.totalCells,
        progress.completedCells,
        progress.failedCells,
        progress.executingCells,
        progress.pendingCells,
    ) == (4, 1, 1, 1, 1)
    assert progress.completionRate == 0.25 and progress.summary == "1/4" and progress.percent == "25%"
    openai, grok = progress.bySurface["openai-api"], progress.bySurface["grok"]
    assert (openai.total, openai.completed, openai.failed, openai.required) == (2, 1, 1, True)
    assert (grok.total, grok.executing, grok.pending, grok.required) == (2, 1, 1, False)
    nyc, lon = progress.byLocation["us-nyc"], progress.byLocation["uk-lon"]
    assert (nyc.total, nyc.completed, nyc.executing, nyc.required) == (2, 1, 1, None)
    assert (lon.total, lon.failed, lon.pending) == (2, 1, 1)


def test_failed_cells_never_count_as_completed() -> None:
    m = manifest(queries=1, surfaces=("openai-api",), locations=("us-nyc", "uk-lon"))
    progress = progress_of(m, [FAILED, FAILED])
    assert progress.completedCells == 0 and progress.completionRate == 0.0 and progress.summary == "0/2"


def test_percent_rounds_down_so_only_a_finished_study_shows_100() -> None:
    m = manifest(queries=300, surfaces=("openai-api",), locations=("us-nyc",))
    progress = progress_of(m, [COMPLETED] * 299 + [RUNNING])
    assert progress.percent == "99%" and progress.summary == "299/300"
    assert progress_of(m, [COMPLETED] * 111 + fresh_records(189)).percent == "37%"


def test_slices_add_up_to_the_totals() -> None:
    m = manifest(queries=7, surfaces=("openai-api", "grok", "meta-ai"), locations=("us-nyc", "uk-lon", "de-ber"))
    states = [COMPLETED, FAILED, RUNNING, WAITING, CellRecord()]
    progress = progress_of(m, [states[(i * 7) % 5] for i in range(m.cell_count)])
    for slices in (progress.bySurface, progress.byLocation):
        assert sum(c.total for c in slices.values()) == progress.totalCells == 63
        assert sum(c.completed for c in slices.values()) == progress.completedCells
        assert sum(c.failed for c in slices.values()) == progress.failedCells
        assert sum(c.executing for c in slices.values()) == progress.executingCells
        assert sum(c.pending for c in slices.values()) == progress.pendingCells
    assert (
        progress.completedCells + progress.failedCells + progress.executingCells + progress.pendingCells
    ) == progress.totalCells
