"""What the benchmarks run: studies of a given size whose pods kwok completes at once, with a good result."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from bentham.api.names import GROUP, VERSION

SURFACES = ("openai-api", "anthropic-api", "google-ai-api", "perplexity-api")
LOCATIONS = ("us-nyc", "uk-lon", "de-ber", "fr-par", "jp-tok")
MAX_QUERIES = 1_000  # the manifest's limit

# What a successful executor writes as its termination message (as tests/support.GOOD_RESULT).
GOOD_RESULT: dict[str, Any] = {
    "success": True,
    "responseLength": 800,
    "isActualContent": True,
    "responseTimeMs": 650,
    "evidence": [{"url": "s3://evidence/cell.json", "sha256": "a" * 64}],
}


@dataclass(frozen=True)
class Scenario:
    """`studies` Studies of `cells` cells each, run at once, each with `parallelism` cells in flight."""

    name: str
    studies: int
    cells: int
    parallelism: int

    @property
    def total_cells(self) -> int:
        return self.studies * self.cells

    def scaled(self, scale: float) -> Scenario:
        """The same shape with `scale` times the cells per study; parallelism never exceeds the cells."""
        if scale == 1:
            return self
        wanted = self.cells * scale
        # Whole queries of the full grid where the size allows, so the shape stays the same.
        per_query = len(SURFACES) * len(LOCATIONS)
        cells = max(1, round(wanted / per_query)) * per_query if wanted >= per_query else max(1, round(wanted))
        return replace(self, cells=cells, parallelism=min(self.parallelism, cells))


SCENARIOS = (
    Scenario("3k", studies=1, cells=3_000, parallelism=100),
    Scenario("10k", studies=1, cells=10_000, parallelism=200),
    Scenario("20x500", studies=20, cells=500, parallelism=10),
)


def grid(cells: int) -> tuple[int, int, int]:
    """(queries, surfaces, locations) with exactly `cells` cells: the widest grid of ours that fits."""
    for surfaces, locations in ((4, 5), (4, 2), (2, 2), (2, 1), (1, 1)):
        queries, rest = divmod(cells, surfaces * locations)
        if rest == 0 and 1 <= queries <= MAX_QUERIES:
            return queries, surfaces, locations
    raise ValueError(f"no manifest of ours has exactly {cells} cells")


def study_body(name: str, cells: int, parallelism: int) -> dict[str, Any]:
    """A Study of `cells` cells whose pods end at once, successfully, with a result that passes every gate."""
    queries, surfaces, locations = grid(cells)
    surface_ids = list(SURFACES[:surfaces])
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Study",
        "metadata": {"name": name},
        "spec": {
            "tenantId": "bench",
            "executor": {
                "image": "example.invalid/executor:1",
                "parallelism": parallelism,
                "podAnnotations": {
                    "sim.bentham.io/bench": "instant",  # bench/stages.yaml: Pending to Succeeded in one step
                    "sim.bentham.io/duration": "0s",
                    "sim.bentham.io/termination-message": json.dumps(GOOD_RESULT),
                },
            },
            "manifest": {
                "name": name,
                "queries": [{"text": f"Benchmark question number {i}?"} for i in range(queries)],
                "surfaces": [{"id": surface} for surface in surface_ids],
                "locations": [{"id": location} for location in LOCATIONS[:locations]],
                "completionCriteria": {
                    "requiredSurfaces": {"surfaceIds": surface_ids, "coverageThreshold": 0.95},
                    "maxRetriesPerCell": 3,
                },
            },
        },
    }


def study_names(scenario: Scenario) -> list[str]:
    if scenario.studies == 1:
        return [f"bench-{scenario.name}".lower()]
    return [f"bench-{scenario.name}-{index:02d}".lower() for index in range(scenario.studies)]
