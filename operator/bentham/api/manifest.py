"""The tenant's study manifest: every field, limit, enum and default of the Bentham manifest.

These models are the single source of truth: the CRD's OpenAPI schema is generated from them
(`bentham.api.crd`), so a limit changed here is a limit changed in the cluster. Field names are
the manifest's own camelCase names, so a tenant's JSON manifest drops in unchanged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

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


class ApiModel(BaseModel):
    """Base of every API model: unknown fields are errors, as the API server's strict mode."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_default=True)


Tag = Annotated[str, Field(min_length=1, max_length=50)]

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
    """How the executor drives a surface."""

    model: str | None = Field(default=None, max_length=200, description="Model name, for API surfaces.")
    captureScreenshot: bool = Field(default=False, description="Capture a screenshot of the answer.")
    captureHtml: bool = Field(default=False, description="Capture the answer's HTML.")
    captureSources: bool = Field(default=True, description="Capture the sources the answer cites.")


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
    proxyType: ProxyType = Field(default=ProxyType.RESIDENTIAL, description="The kind of proxy to use.")
    requireSticky: bool = Field(default=False, description="Keep one exit IP for a whole session.")
    country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code, e.g. US."
    )
    region: str | None = Field(default=None, max_length=100, description="Region or state.")
    city: str | None = Field(default=None, max_length=100, description="City.")
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

    version: Literal["1.0"] = Field(default="1.0", description="Manifest schema version.")
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

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Manifest:
        enforce(self, MANIFEST_RULES)
        return self

    @property
    def cell_count(self) -> int:
        return len(self.queries) * len(self.surfaces) * len(self.locations)

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

MANIFEST_RULES: tuple[Rule[Manifest], ...] = (
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
