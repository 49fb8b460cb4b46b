"""What the benchmarks run: studies of a given size whose pods kwok completes at once, with a good result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from bentham.api.manifest import LocationId, SurfaceId
from bentham.api.names import GROUP, VERSION
from bentham.api.spec import Executor

# The 4 x 5 grid of the 3k, 10k and 20x500 scenarios first, as always; the wider grids (10 x 20) take the next ids.
_FIRST_SURFACES = ("openai-api", "anthropic-api", "google-ai-api", "perplexity-api")
_FIRST_LOCATIONS = ("us-nyc", "uk-lon", "de-ber", "fr-par", "jp-tok")
SURFACES = (*_FIRST_SURFACES, *(s.value for s in SurfaceId if s.value not in _FIRST_SURFACES))
LOCATIONS = (*_FIRST_LOCATIONS, *(loc.value for loc in LocationId if loc.value not in _FIRST_LOCATIONS))
MAX_QUERIES = 1_000  # the manifest's limit
DEFAULT_PARALLELISM: int = Executor.model_fields["parallelism"].default  # a Study that does not say: 10

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
    """`studies` Studies of `cells` cells each, run at once, each with `parallelism` cells in flight.

    `surfaces` x `locations` is the widest grid the studies' manifests use (`grid`). `companions`
    are more Studies created right after these, together (the `mixed` scenario's small ones).
    `restart_at`: once this fraction of all cells has completed, the operator is killed (SIGKILL)
    and a fresh one started. `in_default_run`: run by `make bench` without `--only`.
    """

    name: str
    studies: int
    cells: int
    parallelism: int
    surfaces: int = 4
    locations: int = 5
    companions: Scenario | None = None
    restart_at: float | None = None
    in_default_run: bool = True

    @property
    def total_cells(self) -> int:
        return self.studies * self.cells + (self.companions.total_cells if self.companions else 0)

    def scaled(self, scale: float) -> Scenario:
        """The same shape with `scale` times the cells per study; parallelism never exceeds the cells."""
        if scale == 1:
            return self
        wanted = self.cells * scale
        # Whole queries of the full grid where the size allows, so the shape stays the same.
        per_query = self.surfaces * self.locations
        cells = max(1, round(wanted / per_query)) * per_query if wanted >= per_query else max(1, round(wanted))
        companions = self.companions.scaled(scale) if self.companions else None
        return replace(self, cells=cells, parallelism=min(self.parallelism, cells), companions=companions)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        fields = json.loads(text)
        companions = fields.pop("companions")
        return cls(**fields, companions=cls.from_json(json.dumps(companions)) if companions else None)


@dataclass(frozen=True)
class StudyPlan:
    """One Study of a scenario: its name, size, window and grid; `companion` for the small ones of `mixed`."""

    name: str
    cells: int
    parallelism: int
    surfaces: int = 4
    locations: int = 5
    companion: bool = False

    def body(self) -> dict[str, Any]:
        return study_body(self.name, self.cells, self.parallelism, surfaces=self.surfaces, locations=self.locations)


SCENARIOS = (
    Scenario("3k", studies=1, cells=3_000, parallelism=100),
    Scenario("10k", studies=1, cells=10_000, parallelism=200),
    Scenario("20x500", studies=20, cells=500, parallelism=10),
    # 500 queries x 10 surfaces x 20 locations, killed and restarted once 10 % of its cells are done.
    Scenario(
        "100k",
        studies=1,
        cells=100_000,
        parallelism=500,
        surfaces=10,
        locations=20,
        restart_at=0.1,
        in_default_run=False,
    ),
    # 250 x 10 x 20 = 50,000 cells, then 20 studies of 25 x 4 x 5 at the default parallelism.
    Scenario(
        "mixed",
        studies=1,
        cells=50_000,
        parallelism=500,
        surfaces=10,
        locations=20,
        companions=Scenario("small", studies=20, cells=500, parallelism=DEFAULT_PARALLELISM),
        in_default_run=False,
    ),
)

# The grids tried after a scenario's own, widest first, when the cells are not whole queries of it.
_NARROWER = ((4, 5), (4, 2), (2, 2), (2, 1), (1, 1))


def grid(cells: int, surfaces: int = 4, locations: int = 5) -> tuple[int, int, int]:
    """(queries, surfaces, locations) with exactly `cells` cells: the widest grid of ours that fits, up to the given."""
    shapes = [(surfaces, locations)] + [(s, loc) for s, loc in _NARROWER if s <= surfaces and loc <= locations]
    for width, depth in shapes:
        queries, rest = divmod(cells, width * depth)
        if rest == 0 and 1 <= queries <= MAX_QUERIES:
            return queries, width, depth
    raise ValueError(f"no manifest of ours has exactly {cells} cells")


def study_body(name: str, cells: int, parallelism: int, *, surfaces: int = 4, locations: int = 5) -> dict[str, Any]:
    """A Study of `cells` cells whose pods end at once, successfully, with a result that passes every gate."""
    queries, surfaces, locations = grid(cells, surfaces, locations)
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


def plans(scenario: Scenario) -> list[StudyPlan]:
    """Every Study of the scenario in the order they are created: its own, then its companions."""
    own = [
        StudyPlan(name, scenario.cells, scenario.parallelism, scenario.surfaces, scenario.locations)
        for name in _names(scenario.name, scenario.studies)
    ]
    companions = scenario.companions
    if companions is None:
        return own
    return own + [
        StudyPlan(name, companions.cells, companions.parallelism, companions.surfaces, companions.locations, True)
        for name in _names(f"{scenario.name}-{companions.name}", companions.studies, always_number=True)
    ]


def study_names(scenario: Scenario) -> list[str]:
    return [plan.name for plan in plans(scenario)]


def _names(prefix: str, count: int, *, always_number: bool = False) -> list[str]:
    if count == 1 and not always_number:
        return [f"bench-{prefix}".lower()]
    return [f"bench-{prefix}-{index:02d}".lower() for index in range(count)]
