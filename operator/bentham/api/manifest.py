"""The tenant's study manifest: every field, limit, enum and default of the Bentham manifest.

These models are the single source of truth: the CRD's OpenAPI schema is generated from them
(`bentham.api.crd`), so a limit changed here is a limit changed in the cluster. Field names are
the manifest's own camelCase names, so a tenant's JSON manifest drops in unchanged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.config import JsonDict

from bentham.api.rules import Rule, duplicates, enforce


class SurfaceId(StrEnum):
    """An AI answer engine, reached one way (an API or a web front end)."""

    OPENAI_API = "openai-api"
    ANTHROPIC_API = "anthropic-api"
    GOOGLE_AI_API = "google-ai-api"
    PERPLEXITY_API = "perplexity-api"
    CHATGPT_WEB = "chatgpt-web"
    GEMINI_WEB = "gemini-web"
    PERPLEXITY_WEB = "perplexity-web"
    CLAUDE_WEB = "claude-web"
    META_AI = "meta-ai"
    GROK = "grok"
    GOOGLE_SEARCH = "google-search"
    BING_COPILOT = "bing-copilot"


class LocationId(StrEnum):
    """Where a query appears to come from: a proxy exit."""

    US_NATIONAL = "us-national"
    US_NYC = "us-nyc"
    US_LA = "us-la"
    US_CHI = "us-chi"
    US_HOU = "us-hou"
    US_MIA = "us-mia"
    US_SEA = "us-sea"
    UK_LON = "uk-lon"
    DE_BER = "de-ber"
    DE_MUN = "de-mun"
    FR_PAR = "fr-par"
    NL_AMS = "nl-ams"
    ES_MAD = "es-mad"
    IT_ROM = "it-rom"
    JP_TOK = "jp-tok"
    AU_SYD = "au-syd"
    SG_SG = "sg-sg"
    IN_MUM = "in-mum"
    CA_TOR = "ca-tor"
    CA_VAN = "ca-van"
    BR_SAO = "br-sao"
    MX_MEX = "mx-mex"


class ProxyType(StrEnum):
    RESIDENTIAL = "residential"
    DATACENTER = "datacenter"
    MOBILE = "mobile"


class EvidenceLevel(StrEnum):
    FULL = "full"
    METADATA = "metadata"
    NONE = "none"


class SessionIsolation(StrEnum):
    SHARED = "shared"
    DEDICATED_PER_STUDY = "dedicated_per_study"


class ProxyProvider(StrEnum):
    AUTO = "auto"
    BRIGHTDATA = "brightdata"
    OXYLABS = "oxylabs"
    SMARTPROXY = "smartproxy"
    IPROYAL = "iproyal"
    TWOCAPTCHA = "2captcha"


class BackoffStrategy(StrEnum):
    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class ExecutionOrder(StrEnum):
    ROUND_ROBIN = "round-robin"
    SURFACE_FIRST = "surface-first"
    LOCATION_FIRST = "location-first"


class ApiModel(BaseModel):
    """Base of every API model: unknown fields are errors, as the API server's strict mode."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_default=True)


Tag = Annotated[str, Field(max_length=50)]

# A list the API server keeps duplicate-free (it rejects a repeated item with "Duplicate value").
SET: JsonDict = {"x-kubernetes-list-type": "set"}


def _unique(ids: list[SurfaceId]) -> list[SurfaceId]:
    repeated = duplicates(ids)
    if repeated:
        raise ValueError(f"each surface id may appear only once; repeated: {', '.join(map(str, repeated))}")
    return ids


class Query(ApiModel):
    """One question asked of every surface from every location."""

    text: str = Field(min_length=1, max_length=10_000, description="The question, verbatim.")
    context: str | None = Field(default=None, max_length=5_000, description="Optional context sent with the question.")
    category: str | None = Field(default=None, max_length=100, description="Free-form grouping.")
    tags: list[Tag] | None = Field(default=None, max_length=20, description="Up to 20 tags of up to 50 chars.")


class SurfaceOptions(ApiModel):
    """How the executor drives a surface; any other key is kept and handed to the executor, as in the original."""

    # The one place unknown keys are kept (the original's `.passthrough()`): surface-specific settings.
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    model: str | None = Field(
        default=None, max_length=200, description="Model name, for API surfaces (the surface's default if unset)."
    )
    captureScreenshots: bool = Field(default=False, description="Capture a screenshot of each answer.")
    captureImages: bool = Field(default=False, description="Extract and capture the images of each answer.")
    captureHtml: bool = Field(default=False, description="Capture the answer's full HTML.")


class Surface(ApiModel):
    """An AI answer engine to ask."""

    id: SurfaceId = Field(description="The surface, from the fixed list of supported surfaces.")
    required: bool = Field(
        default=True,
        description=(
            "Informational, as in the original: completionCriteria.requiredSurfaces alone makes a surface "
            "required; a flag that disagrees with it gets a warning."
        ),
    )
    options: SurfaceOptions | None = Field(default=None, description="How to drive the surface.")


class Location(ApiModel):
    """A place queries appear to come from (a proxy exit)."""

    id: LocationId = Field(description="The location, from the fixed list of supported locations.")
    name: str | None = Field(default=None, max_length=200, description="A name for people, e.g. New York City.")
    proxyType: ProxyType = Field(default=ProxyType.RESIDENTIAL, description="The kind of proxy to use.")
    proxyProvider: ProxyProvider = Field(
        default=ProxyProvider.AUTO, description="The proxy provider for this location; auto picks the best available."
    )
    requireSticky: bool = Field(default=False, description="Keep one exit IP for a whole session.")
    country: str | None = Field(
        default=None, min_length=2, max_length=2, description="Two-character country code, e.g. US (ISO 3166-1)."
    )
    region: str | None = Field(default=None, max_length=200, description="Region or state.")
    city: str | None = Field(default=None, max_length=200, description="City.")
    sessionDuration: int | None = Field(
        default=None, ge=0, le=120, description="Sticky session length in minutes, 0-120."
    )


class RequiredSurfaces(ApiModel):
    """Surfaces whose coverage decides whether the study is complete."""

    surfaceIds: list[SurfaceId] = Field(
        min_length=1,
        max_length=20,
        json_schema_extra=SET,
        description="Surfaces that must reach the coverage threshold; each must be in surfaces, once.",
    )
    _unique_ids = field_validator("surfaceIds")(_unique)

    coverageThreshold: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="Fraction (0-1) of each required surface's cells that must complete.",
    )


class OptionalSurfaces(ApiModel):
    """Surfaces run on a best-effort basis; they never block completion."""

    # The schema default matches the factory: the API server fills it in before the CEL rules,
    # which read surfaceIds whenever optionalSurfaces is set.
    surfaceIds: list[SurfaceId] = Field(
        default_factory=list,
        max_length=20,
        json_schema_extra={**SET, "default": []},
        description="Best-effort surfaces; each must be in surfaces, once.",
    )

    _unique_ids = field_validator("surfaceIds")(_unique)


class CompletionCriteria(ApiModel):
    """When the study is done."""

    requiredSurfaces: RequiredSurfaces = Field(description="Surfaces that must reach their coverage.")
    optionalSurfaces: OptionalSurfaces | None = Field(default=None, description="Best-effort surfaces.")
    maxRetriesPerCell: int = Field(
        default=3,
        ge=1,
        le=10,
        description=(
            "Attempts per cell, first try included: 1 means one try and no retry, 3 means a try and up to two retries."
        ),
    )
    minSuccessRate: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Informational: below this share of passing attempts the study is at risk (reason "
        "LowSuccessRate); it never fails a study by itself.",
    )
    consecutiveFailureLimit: int = Field(
        default=5,
        ge=1,
        le=20,
        description=(
            "Failed attempts in a row on one required surface, each with a failure a person can fix "
            "(spec.policy.interventionFailures), that stop the surface and ask for a person. A completed "
            "attempt on the surface resets the count."
        ),
    )


class RetryConditions(ApiModel):
    """Which failures earn another attempt (execution.retry); the executor's error codes map onto them."""

    onRateLimited: bool = Field(default=True, description="Retry RATE_LIMITED.")
    onNetworkError: bool = Field(default=True, description="Retry NETWORK_ERROR (and a pod lost with its node).")
    onServiceUnavailable: bool = Field(default=True, description="Retry SERVICE_UNAVAILABLE.")
    onTimeout: bool = Field(default=True, description="Retry TIMEOUT (and a Job stopped at its deadline).")
    onInvalidResponse: bool = Field(
        default=True, description="Retry INVALID_RESPONSE and results that fail the quality gates or cannot be read."
    )
    onSessionExpired: bool = Field(default=True, description="Retry SESSION_EXPIRED.")
    onCaptchaRequired: bool = Field(default=False, description="Retry CAPTCHA.")


class Retry(ApiModel):
    """How failed attempts are retried, when the tenant says so (docs/manifest.md)."""

    maxRetries: int | None = Field(
        default=None,
        ge=0,
        le=10,
        description=(
            "Retries after the first attempt, 0-10. When written, a cell gets maxRetries + 1 attempts and "
            "completionCriteria.maxRetriesPerCell is not used. The original defaults it to 3; here absent "
            "means completionCriteria.maxRetriesPerCell decides."
        ),
    )
    backoffStrategy: BackoffStrategy = Field(
        default=BackoffStrategy.EXPONENTIAL,
        description="fixed: initialDelayMs every time; linear: initialDelayMs x n; exponential: x multiplier^(n-1).",
    )
    initialDelayMs: int = Field(default=1_000, ge=100, le=60_000, description="Delay before the first retry, ms.")
    maxDelayMs: int = Field(default=60_000, ge=1_000, le=300_000, description="Longest delay between attempts, ms.")
    backoffMultiplier: float = Field(default=2.0, ge=1, le=5, description="Growth of exponential backoff, 1-5.")
    jitter: bool = Field(default=True, description="Shorten each delay by up to 20%, so retries of a burst spread.")
    retryConditions: RetryConditions = Field(
        default_factory=RetryConditions, json_schema_extra={"default": {}}, description="Which failures are retried."
    )


class CheckpointSettings(ApiModel):
    """The original's checkpoint settings: accepted; the operator checkpoints in every status write."""

    enabled: bool = Field(default=True, description="Accepted; checkpoints are always on (the study's status).")
    saveIntervalCells: int = Field(default=10, ge=1, le=1_000, description="Accepted; every status write saves.")
    saveIntervalSeconds: int = Field(default=30, ge=5, le=300, description="Accepted; every status write saves.")
    preserveCheckpoint: bool = Field(default=False, description="Accepted; the checkpoint stays in the status.")


class Timeouts(ApiModel):
    """Time limits (docs/manifest.md)."""

    queryTimeoutMs: int = Field(
        default=30_000,
        ge=5_000,
        le=300_000,
        description="One query's time limit, for the executor (BENTHAM_QUERY_TIMEOUT_MS); an attempt's Job runs at "
        "least this long.",
    )
    surfaceTimeoutMs: int | None = Field(
        default=None, ge=30_000, le=3_600_000, description="For the executor (BENTHAM_SURFACE_TIMEOUT_MS)."
    )
    studyTimeoutMs: int | None = Field(
        default=None,
        ge=60_000,
        description="The study's running time (paused time excluded) ends after this long, or at the deadline if "
        "that comes first; then spec.policy.onDeadlineMissed applies (reason StudyTimedOut). No default.",
    )
    connectionTimeoutMs: int = Field(
        default=10_000, ge=1_000, le=60_000, description="For the executor (BENTHAM_CONNECTION_TIMEOUT_MS)."
    )


class Execution(ApiModel):
    """How the study is run. Scheduling fields act only when written (absent: not limited by them)."""

    retry: Retry = Field(default_factory=Retry, json_schema_extra={"default": {}}, description="Retries.")
    checkpoint: CheckpointSettings = Field(
        default_factory=CheckpointSettings, json_schema_extra={"default": {}}, description="Accepted (see docs)."
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, json_schema_extra={"default": {}}, description="Time limits.")
    concurrencyPerSurface: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="At most this many cells of one surface in flight (a surface account's rate). The original "
        "defaults it to 1; here absent means no limit per surface.",
    )
    maxConcurrency: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="At most this many cells in flight, below spec.executor.parallelism when lower. The original "
        "defaults it to 8; here absent means spec.executor.parallelism alone decides.",
    )
    queryDelayMs: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="[min, max] ms the executor waits before its query (BENTHAM_QUERY_DELAY_MS); the original's "
        "default is [500, 2000].",
    )
    shuffleQueries: bool | None = Field(
        default=None,
        description="Start the queries in an order shuffled by the study's uid (the same after a restart). The "
        "original defaults it to true; here absent keeps manifest order.",
    )
    executionOrder: ExecutionOrder | None = Field(
        default=None,
        description="round-robin (the fair diagonal order), surface-first (one surface's cells before the next's) "
        "or location-first; within required surfaces, then optional ones. Absent: round-robin.",
    )


class QualityGates(ApiModel):
    """The validator's gates applied to every cell's result."""

    minResponseLength: int = Field(
        default=0, ge=0, description="Shortest acceptable response in characters; 0 turns the gate off."
    )
    requireActualContent: bool = Field(
        default=True, description="Fail responses that are not actual content (an error page, a CAPTCHA)."
    )


class Manifest(ApiModel):
    """A study: every query asked of every surface from every location."""

    version: str = Field(
        default="1.0",
        max_length=50,
        description='The manifest schema version, any string (the original writes "1.0.0").',
    )
    name: str = Field(min_length=1, max_length=200, description="A name for people, 1-200 characters.")
    description: str | None = Field(default=None, max_length=2_000, description="Up to 2,000 characters.")
    queries: list[Query] = Field(min_length=1, max_length=1_000, description="1-1,000 queries.")
    surfaces: list[Surface] = Field(min_length=1, max_length=20, description="1-20 surfaces, each id once.")
    locations: list[Location] = Field(min_length=1, max_length=50, description="1-50 locations, each id once.")
    completionCriteria: CompletionCriteria = Field(description="When the study is complete.")
    qualityGates: QualityGates = Field(
        default_factory=QualityGates,
        json_schema_extra={"default": {}},
        description="Gates every cell's result must pass.",
    )
    evidenceLevel: EvidenceLevel = Field(
        default=EvidenceLevel.METADATA,
        description="Evidence kept per cell: full (a result without evidence fails), metadata, none.",
    )
    legalHold: bool = Field(
        default=False,
        description="Keep the study's data under legal hold; needs retentionDays or preserveForever.",
    )
    deadline: datetime | None = Field(
        default=None,
        description=(
            "When the study must be done (RFC 3339). Must be in the future when the study is created. "
            "Without a deadline the study is never at risk."
        ),
    )
    retentionDays: int | None = Field(default=None, ge=1, le=2_555, description="Days to keep results, 1-2,555.")
    preserveForever: bool = Field(default=False, description="Keep results forever.")
    sessionIsolation: SessionIsolation = Field(
        default=SessionIsolation.SHARED, description="Share browser sessions across studies, or not."
    )
    execution: Execution | None = Field(default=None, description="How the study is run; see docs/manifest.md.")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Manifest:
        enforce(self, MANIFEST_RULES)
        return self

    @property
    def cell_count(self) -> int:
        return len(self.queries) * len(self.surfaces) * len(self.locations)

    @property
    def max_attempts(self) -> int:
        """Attempts per cell: execution.retry.maxRetries + 1 when written, else completionCriteria.maxRetriesPerCell."""
        retries = self.execution.retry.maxRetries if self.execution is not None else None
        return retries + 1 if retries is not None else self.completionCriteria.maxRetriesPerCell

    @property
    def study_timeout_ms(self) -> int | None:
        """execution.timeouts.studyTimeoutMs: running time after which the study is past its end."""
        return self.execution.timeouts.studyTimeoutMs if self.execution is not None else None

    @property
    def optional_surface_ids(self) -> list[SurfaceId]:
        optional = self.completionCriteria.optionalSurfaces
        return list(optional.surfaceIds) if optional else []

    @property
    def required_surface_ids(self) -> list[SurfaceId]:
        """Surfaces that block completion, in manifest order: those listed in `requiredSurfaces`, and no other.

        As in the original, `surfaces[].required` decides nothing (a warning names a surface whose
        flag disagrees with the lists); a surface in neither list is optional.
        """
        listed = set(self.completionCriteria.requiredSurfaces.surfaceIds)
        return [s.id for s in self.surfaces if s.id in listed]


_OPTIONAL_IDS = (
    "(has(self.completionCriteria.optionalSurfaces) ? self.completionCriteria.optionalSurfaces.surfaceIds : [])"
)

MAX_QUERY_CHARACTERS = 1_000_000
"""The most characters of query text and context one Study holds: etcd keeps objects of up to ~1.5 MiB."""

MANIFEST_RULES: tuple[Rule[Manifest], ...] = (
    Rule(
        field=".queries",
        message=(
            f"queries: the query texts and contexts add up to more than {MAX_QUERY_CHARACTERS:,} characters; a Study "
            "is one Kubernetes object (etcd keeps ~1.5 MiB), so split the queries over several Studies"
        ),
        cel=(
            "self.queries.map(q, size(q.text) + (has(q.context) ? size(q.context) : 0)).sum() "
            f"<= {MAX_QUERY_CHARACTERS}"
        ),
        holds=lambda m: sum(len(q.text) + len(q.context or "") for q in m.queries) <= MAX_QUERY_CHARACTERS,
    ),
    Rule(
        field=".surfaces",
        message="surfaces: each surface id may appear only once",
        cel="self.surfaces.all(s, self.surfaces.exists_one(t, t.id == s.id))",
        holds=lambda m: not duplicates(s.id for s in m.surfaces),
    ),
    Rule(
        field=".locations",
        message="locations: each location id may appear only once",
        cel="self.locations.all(l, self.locations.exists_one(t, t.id == l.id))",
        holds=lambda m: not duplicates(loc.id for loc in m.locations),
    ),
    Rule(
        field=".completionCriteria.requiredSurfaces.surfaceIds",
        message="completionCriteria.requiredSurfaces.surfaceIds: every id must also be listed in surfaces",
        cel=("self.completionCriteria.requiredSurfaces.surfaceIds.all(id, self.surfaces.exists(s, s.id == id))"),
        holds=lambda m: set(m.completionCriteria.requiredSurfaces.surfaceIds) <= {s.id for s in m.surfaces},
    ),
    Rule(
        field=".completionCriteria.optionalSurfaces.surfaceIds",
        message="completionCriteria.optionalSurfaces.surfaceIds: every id must also be listed in surfaces",
        cel=f"{_OPTIONAL_IDS}.all(id, self.surfaces.exists(s, s.id == id))",
        holds=lambda m: set(m.optional_surface_ids) <= {s.id for s in m.surfaces},
    ),
    Rule(
        field=".completionCriteria.optionalSurfaces.surfaceIds",
        message="completionCriteria: a surface id may be in requiredSurfaces or optionalSurfaces, not both",
        cel=f"!{_OPTIONAL_IDS}.exists(id, id in self.completionCriteria.requiredSurfaces.surfaceIds)",
        holds=lambda m: not set(m.optional_surface_ids) & set(m.completionCriteria.requiredSurfaces.surfaceIds),
    ),
    Rule(
        field=".legalHold",
        message="legalHold: a study under legal hold needs retentionDays or preserveForever: true",
        cel="!self.legalHold || has(self.retentionDays) || self.preserveForever",
        holds=lambda m: not m.legalHold or m.retentionDays is not None or m.preserveForever,
    ),
)
