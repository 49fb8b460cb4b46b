"""The Study's spec: the tenant's manifest plus the operational fields that run it.

`spec` is the user's intent. The operator reads it and never writes it, so GitOps tools and
`kubectl apply` own every field here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, JsonValue, model_validator

from bentham.api.manifest import ApiModel, Manifest
from bentham.api.rules import Rule, duplicates, enforce

# Kubernetes objects we pass through to the Job verbatim; the API server validates them there.
KubeObject = Annotated[dict[str, Any], Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})]


class EnvVar(ApiModel):
    """An environment variable for the executor container."""

    name: str = Field(min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(default=None, max_length=32_768, description="Literal value.")
    valueFrom: KubeObject | None = Field(
        default=None, description="A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, ...)."
    )


class Resources(ApiModel):
    """Compute resources for the executor container, as in a core/v1 ResourceRequirements."""

    requests: dict[str, str] | None = Field(default=None, description="Minimum resources, e.g. cpu: 100m.")
    limits: dict[str, str] | None = Field(default=None, description="Maximum resources, e.g. memory: 256Mi.")


# Numeric ids only: `runAsNonRoot` can be checked by the kubelet only against a number, and 0 is root.
PosixId = Annotated[int, Field(ge=1, le=2_147_483_647)]


class ExecutorSecurityContext(ApiModel):
    """What a study may choose of its pods' security context: only what keeps them within `restricted`.

    The operator always sets runAsNonRoot, no privilege escalation, every capability dropped and
    the RuntimeDefault seccomp profile (docs/executor.md); none of that can be turned off here.
    """

    runAsUser: PosixId | None = Field(
        default=None, description="The user id the executor runs as (not 0). Default: 65532."
    )
    runAsGroup: PosixId | None = Field(
        default=None, description="The primary group id of the executor's processes (not 0). Default: 65532."
    )
    fsGroup: PosixId | None = Field(default=None, description="The group that owns the pod's volumes (not 0).")
    readOnlyRootFilesystem: bool | None = Field(
        default=None, description="true mounts the container's root filesystem read-only."
    )


class ClaimSource(ApiModel):
    """A PersistentVolumeClaim of the study's own namespace."""

    claimName: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The claim's name; one the operator's executor policy allows (volumeClaims).",
    )


class ScratchSource(ApiModel):
    """An emptyDir: a folder that lives as long as the pod."""

    sizeLimit: str | None = Field(default=None, max_length=64, description="Its most, as a quantity (e.g. 1Gi).")


class ExecutorVolume(ApiModel):
    """A volume mounted into every cell's executor container: a claim of the namespace, or a scratch folder.

    Only these two kinds: both are allowed by the `restricted` Pod Security level, and a claim is
    mounted only when the operator's executor policy allows its name (`volumeClaims`).
    """

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The volume's name in the pod (a DNS label), unique among executor.volumes.",
    )
    mountPath: str = Field(
        min_length=2,
        max_length=1_024,
        pattern=r"^/",
        description=(
            "Where the executor sees it: an absolute path, not /dev, /proc or /sys (nor below them), "
            "without '..', unique among executor.volumes."
        ),
    )
    readOnly: bool = Field(default=False, description="true mounts it read-only.")
    persistentVolumeClaim: ClaimSource | None = Field(default=None, description="Mount this claim.")
    emptyDir: ScratchSource | None = Field(default=None, description="Mount a scratch folder of the pod's own.")

    @model_validator(mode="after")
    def _volume_rules(self) -> ExecutorVolume:
        enforce(self, VOLUME_RULES)
        return self


_SYSTEM_FOLDERS = ("/dev", "/proc", "/sys")

VOLUME_RULES: tuple[Rule[ExecutorVolume], ...] = (
    Rule(
        field=".persistentVolumeClaim",
        message="executor.volumes: set exactly one of persistentVolumeClaim or emptyDir",
        cel="has(self.persistentVolumeClaim) != has(self.emptyDir)",
        holds=lambda v: (v.persistentVolumeClaim is None) != (v.emptyDir is None),
    ),
    Rule(
        field=".mountPath",
        message="executor.volumes.mountPath: must not contain a '..' segment",
        cel="!self.mountPath.contains('/../') && !self.mountPath.endsWith('/..')",
        holds=lambda v: "/../" not in v.mountPath and not v.mountPath.endswith("/.."),
    ),
    Rule(
        field=".mountPath",
        message="executor.volumes.mountPath: must not be /dev, /proc or /sys, nor below them",
        cel=" && ".join(f"self.mountPath != '{f}' && !self.mountPath.startsWith('{f}/')" for f in _SYSTEM_FOLDERS),
        holds=lambda v: not any(v.mountPath == f or v.mountPath.startswith(f + "/") for f in _SYSTEM_FOLDERS),
    ),
)


class Executor(ApiModel):
    """The Job template of a cell: what runs one query on one surface from one location."""

    image: str = Field(min_length=1, max_length=1_024, description="The executor's container image.")
    imagePullPolicy: str | None = Field(
        default=None, pattern="^(Always|IfNotPresent|Never)$", description="Always, IfNotPresent or Never."
    )
    command: list[str] | None = Field(default=None, max_length=64, description="Entrypoint override.")
    args: list[str] | None = Field(default=None, max_length=256, description="Arguments to the entrypoint.")
    env: list[EnvVar] | None = Field(default=None, max_length=128, description="Extra environment variables.")
    resources: Resources | None = Field(default=None, description="Container resources.")
    serviceAccountName: str | None = Field(
        default=None,
        max_length=253,
        description=(
            "ServiceAccount the executor's pods run as, with its token mounted; one the operator's "
            "executor policy allows. Unset: the namespace's default, without a token."
        ),
    )
    nodeSelector: dict[str, str] | None = Field(
        default=None, description="Node labels the pods must match; keys the operator's executor policy allows."
    )
    tolerations: list[KubeObject] | None = Field(
        default=None,
        max_length=64,
        description="core/v1 Tolerations for the pods; each one the operator's executor policy allows.",
    )
    securityContext: ExecutorSecurityContext | None = Field(
        default=None,
        description=(
            "Tightens the pods' security context (user, group, read-only root); the restricted defaults always apply."
        ),
    )
    volumes: list[ExecutorVolume] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Volumes mounted into every cell's executor container: claims the operator's executor policy "
            "allows, or scratch folders (for example the reference executor's evidence folder)."
        ),
    )
    podLabels: dict[str, str] | None = Field(default=None, description="Extra labels on every cell's pod.")
    podAnnotations: dict[str, str] | None = Field(default=None, description="Extra annotations on every cell's pod.")
    attemptTimeoutSeconds: int = Field(
        default=900,
        ge=10,
        le=86_400,
        description="Longest one attempt may run before it is stopped and counted as failed.",
    )
    parallelism: int = Field(default=10, ge=1, le=1_000, description="The most cells of this study in flight at once.")
    maxParallelism: int | None = Field(
        default=None,
        ge=1,
        le=1_000,
        description=(
            "The ceiling the operator may raise parallelism to when the study is at risk of missing "
            "its deadline. Unset: parallelism is never raised."
        ),
    )

    @model_validator(mode="after")
    def _executor_rules(self) -> Executor:
        enforce(self, EXECUTOR_RULES)
        return self


def _unique_volume(key: str) -> Rule[Executor]:
    def holds(executor: Executor) -> bool:
        return not duplicates(getattr(volume, key) for volume in executor.volumes or [])

    return Rule(
        field=".volumes",
        message=f"executor.volumes: each {key} must be unique",
        cel=f"!has(self.volumes) || self.volumes.all(v, self.volumes.exists_one(w, w.{key} == v.{key}))",
        holds=holds,
    )


EXECUTOR_RULES: tuple[Rule[Executor], ...] = (_unique_volume("name"), _unique_volume("mountPath"))


class SecretKeyRef(ApiModel):
    """A Secret in the study's namespace holding the webhook's URL and, optionally, its auth header."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    urlKey: str = Field(default="url", min_length=1, max_length=253, description="Key holding the webhook URL.")
    authHeaderKey: str | None = Field(
        default="authorization",
        max_length=253,
        description="Key holding the Authorization header's value; a missing key sends no header.",
    )


class Notifications(ApiModel):
    """Where the study's events are posted (the notification hub): a URL, or a Secret holding it."""

    webhookUrl: str | None = Field(
        default=None,
        max_length=2_048,
        pattern=r"^https?://",
        description="An http(s) URL that receives a JSON POST per event.",
    )
    secretRef: SecretKeyRef | None = Field(default=None, description="A Secret holding the URL and auth header.")

    @model_validator(mode="after")
    def _one_destination(self) -> Notifications:
        enforce(self, NOTIFICATIONS_RULES)
        return self


NOTIFICATIONS_RULES: tuple[Rule[Notifications], ...] = (
    Rule(
        field=".webhookUrl",
        message="notifications: set exactly one of webhookUrl or secretRef",
        cel="has(self.webhookUrl) != has(self.secretRef)",
        holds=lambda n: (n.webhookUrl is None) != (n.secretRef is None),
    ),
)


class Cancel(ApiModel):
    """A request to cancel the study; setting it is final."""

    reason: str = Field(min_length=1, max_length=1_000, description="Why the study is cancelled, for the record.")


class OnDeadlineMissed(StrEnum):
    """What happens when the deadline passes with a required surface short of its threshold."""

    HUMAN_INTERVENTION = "HumanIntervention"
    FAIL = "Fail"


# Failures that say "this surface is blocked for us", not "this answer was unlucky": an executor
# error code or a verdict reason (see docs/executor.md).
DEFAULT_INTERVENTION_FAILURES = ["AUTH_FAILED", "QUOTA_EXCEEDED", "CAPTCHA", "NotActualContent"]

FailureName = Annotated[str, Field(min_length=1, max_length=128)]


class Policy(ApiModel):
    """How the operator watches the deadline and when it stops to ask a person (docs/lifecycle.md)."""

    onDeadlineMissed: OnDeadlineMissed = Field(
        default=OnDeadlineMissed.HUMAN_INTERVENTION,
        description=(
            "At the deadline, with a required surface below its threshold: HumanIntervention stops "
            "starting cells and waits for a person (spec.interventionAck); Fail fails the study."
        ),
    )
    atRiskMargin: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description=(
            "The study becomes at risk when its current rate falls below atRiskMargin x the required "
            "rate; it is back on schedule once the current rate reaches the required rate. 0 turns the "
            "rate rule off."
        ),
    )
    noProgressFraction: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description=(
            "With no required cell completed yet, the study is at risk once this share of the time "
            "from its creation to its deadline has passed, or when less than 15 minutes remain."
        ),
    )
    interventionFailures: list[FailureName] = Field(
        default_factory=lambda: list(DEFAULT_INTERVENTION_FAILURES),
        max_length=64,
        json_schema_extra={"default": list[JsonValue](DEFAULT_INTERVENTION_FAILURES)},
        description=(
            "Failures a person can fix: executor error codes (AUTH_FAILED, CAPTCHA) or verdict reasons "
            "(NotActualContent). A required surface's cell failing for good with one is blocked, not failed, "
            "and the study asks for a person rather than fail; they count towards "
            "manifest.completionCriteria.consecutiveFailureLimit. Other failures neither count nor reset."
        ),
    )


class StudySpec(ApiModel):
    """What the tenant wants run, and how."""

    tenantId: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The tenant that owns the study (a DNS label). Tenants never see each other's studies.",
    )
    manifest: Manifest = Field(description="The tenant's study manifest, as the original orchestrator accepts it.")
    executor: Executor = Field(description="How each cell runs: the Job template and the parallelism.")
    paused: bool = Field(default=False, description="true pauses the study: no new cell starts. false resumes it.")
    cancel: Cancel | None = Field(
        default=None, description="Set to cancel the study with a reason. Cancelling is final."
    )
    notifications: Notifications | None = Field(default=None, description="A webhook that receives the study's events.")
    policy: Policy = Field(
        default_factory=Policy,
        json_schema_extra={"default": {}},
        description="Deadline, at-risk and human-intervention policy.",
    )
    interventionAck: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description=(
            "Resumes a study waiting for a person: set it to any value other than "
            "status.intervention.ack (a date, a ticket number). Fix the cause first."
        ),
    )

    @model_validator(mode="after")
    def _spec_rules(self) -> StudySpec:
        enforce(self, SPEC_RULES)
        return self


SPEC_RULES: tuple[Rule[StudySpec], ...] = (
    Rule(
        field=".executor.maxParallelism",
        message="executor.maxParallelism: must be at least executor.parallelism",
        cel="!has(self.executor.maxParallelism) || self.executor.maxParallelism >= self.executor.parallelism",
        holds=lambda s: s.executor.maxParallelism is None or s.executor.maxParallelism >= s.executor.parallelism,
    ),
    Rule(
        field=".cancel",
        message="cancel: a cancelled study cannot be un-cancelled",
        cel="!has(oldSelf.cancel) || has(self.cancel)",
        holds=None,
    ),
    *(
        Rule(
            field=f".manifest.{part}",
            message=(
                f"manifest.{part}: the cell matrix is fixed once the Study exists: {what} cannot change; "
                "create a new Study for a different matrix"
            ),
            cel=f"self.manifest.{part}.map(x, x.{key}) == oldSelf.manifest.{part}.map(x, x.{key})",
            holds=None,
        )
        for part, key, what in (
            ("surfaces", "id", "the surface ids and their order"),
            ("locations", "id", "the location ids and their order"),
            ("queries", "text", "the query texts and their order"),
        )
    ),
)
