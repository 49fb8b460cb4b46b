"""The operator admin's executor policy: what a study may ask of its pods, per namespace.

A study is input from whoever may edit Studies in one namespace; its pods must not reach further
than the platform team allows. The policy (BENTHAM_EXECUTOR_POLICY_FILE, the chart's
`executorPolicy`) lists the ServiceAccounts a study may name, the tolerations and node selector
keys it may use and the PersistentVolumeClaims it may mount, and caps its parallelism and its
executor's resources. Nothing configured allows nothing: no ServiceAccount (the pods run as the
namespace's `default`, without a token), no toleration, no node selector, no claim (scratch
folders only), and no cap beyond the CRD's own limits.

A study asking for more is not run: `within_policy` turns its validation into `Invalid` with
reason `ExecutorNotAllowed` and one message per field, naming the field and the rule, so a new
study fails and a running one is held (`spec_hold`) until its spec or the policy changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bentham.api.spec import Executor
from bentham.api.validation import Invalid, Valid, describe
from bentham.core.quantities import NotAQuantity, parse_quantity

EXECUTOR_NOT_ALLOWED = "ExecutorNotAllowed"
_WHERE = "the operator's executor policy"
# Pod annotations that would loosen the pod's confinement where the namespace does not enforce a Pod Security level.
_APPARMOR = "container.apparmor.security.beta.kubernetes.io/"
_SECCOMP = "seccomp.security.alpha.kubernetes.io/"


class ExecutorPolicyInvalid(ValueError):
    """A policy file that cannot be used; the message names the file and the field."""


def _is_cap(text: str) -> str:
    if parse_quantity(text) < 0:
        raise ValueError(f"{text!r} is negative")
    return text


def _as_text(value: Any) -> Any:
    """`cpu: 2` in YAML is a number; Kubernetes reads it as the quantity "2", and so does the policy."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Cap = Annotated[str, BeforeValidator(_as_text), AfterValidator(_is_cap)]


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowedToleration(_PolicyModel):
    """A toleration a study may use, or any narrower one: same key, a given value, a given effect."""

    key: str = Field(default="", max_length=317)
    """The taint key; empty with operator Exists allows every toleration."""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    """For Equal: the only value allowed; unset allows any value."""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    """The only effect allowed; empty allows any effect, and a toleration of every effect."""

    def admits(self, toleration: Mapping[str, Any]) -> bool:
        """Whether the study's `toleration` tolerates nothing this entry does not."""
        key, operator = toleration.get("key") or "", toleration.get("operator") or "Equal"
        effect = toleration.get("effect") or ""
        if self.effect and effect != self.effect:
            return False
        if self.operator == "Exists":
            # Exists without a key tolerates every taint: allowed only by an entry that allows that.
            return self.key in ("", key) and (bool(key) or operator == "Exists")
        return (
            operator == "Equal"
            and key == self.key
            and (self.value is None or (toleration.get("value") or "") == self.value)
        )

    def describe(self) -> str:
        value = f"={self.value}" if self.value is not None else ""
        return f"{self.key or '<any key>'} {self.operator}{value} {self.effect or '<any effect>'}"


class ResourceCaps(_PolicyModel):
    """The most one executor container may request and be limited to, by resource name."""

    requests: dict[str, Cap] = Field(default_factory=dict)
    limits: dict[str, Cap] = Field(default_factory=dict)


class Allowances(_PolicyModel):
    """What the studies of a namespace may ask; a field left unset takes the policy's default."""

    serviceAccounts: list[str] | None = None
    """ServiceAccounts (in the study's own namespace) a study may name in executor.serviceAccountName."""
    tolerations: list[AllowedToleration] | None = None
    nodeSelectorKeys: list[str] | None = None
    """Node label keys a study may select on in executor.nodeSelector."""
    volumeClaims: list[str] | None = None
    """PersistentVolumeClaims (of the study's own namespace; names or globs) executor.volumes may mount."""
    maxParallelism: int | None = Field(default=None, ge=1)
    """The most executor.parallelism (and executor.maxParallelism) may be."""
    maxResources: ResourceCaps | None = None
    """Caps on executor.resources; a capped limit must be set, a capped request may be left out."""


class ExecutorPolicy(_PolicyModel):
    """`default` for every namespace; `namespaces` by name or glob (`tenant-*`) replace its fields one by one."""

    default: Allowances = Field(default_factory=Allowances)
    namespaces: dict[str, Allowances] = Field(default_factory=dict)

    def allowances(self, namespace: str) -> Allowances:
        """What the studies of `namespace` may ask: its own entry (or the first glob matching it) over the default."""
        entry = self.namespaces.get(namespace)
        if entry is None:
            entry = next((a for pattern, a in self.namespaces.items() if fnmatchcase(namespace, pattern)), None)
        if entry is None:
            return self.default
        return self.default.model_copy(update={k: getattr(entry, k) for k in entry.model_fields_set})


def executor_policy_of(text: str, source: str = "the executor policy file") -> ExecutorPolicy:
    """The policy in `text` (YAML or JSON); raises `ExecutorPolicyInvalid` naming `source` and the field."""
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ExecutorPolicyInvalid(f"{source} is not YAML: {error}") from error
    try:
        return ExecutorPolicy.model_validate(entries or {})
    except ValidationError as error:
        problems = "; ".join(line for e in error.errors() for line in describe(e))
        raise ExecutorPolicyInvalid(f"{source} is not a usable executor policy: {problems}") from error


def within_policy(validation: Valid | Invalid, namespace: str, policy: ExecutorPolicy | None) -> Valid | Invalid:
    """A valid spec stays valid only if its executor asks for nothing the policy forbids in `namespace`."""
    if isinstance(validation, Invalid):
        return validation
    refused = refusals(validation.spec.executor, namespace, policy or ExecutorPolicy())
    return Invalid(refused, reason=EXECUTOR_NOT_ALLOWED) if refused else validation


def refusals(executor: Executor, namespace: str, policy: ExecutorPolicy) -> list[str]:
    """What `executor` asks beyond `policy` in `namespace`: one message per field, naming the field and the rule."""
    allowed = policy.allowances(namespace)
    where = f"for namespace {namespace} by {_WHERE}"
    problems: list[str] = []
    account = executor.serviceAccountName
    if account is not None and account not in (allowed.serviceAccounts or []):
        problems.append(
            f"executor.serviceAccountName: ServiceAccount {account!r} is not allowed {where} "
            f"(allowed: {_listed(allowed.serviceAccounts)}); leave it unset to run without a token"
        )
    for position, toleration in enumerate(executor.tolerations or []):
        entries = allowed.tolerations or []
        if not any(entry.admits(toleration) for entry in entries):
            problems.append(
                f"executor.tolerations[{position}]: {_toleration(toleration)} is not allowed {where} "
                f"(allowed: {_listed([entry.describe() for entry in entries])})"
            )
    for key in executor.nodeSelector or {}:
        if key not in (allowed.nodeSelectorKeys or []):
            problems.append(
                f"executor.nodeSelector: key {key!r} is not allowed {where} "
                f"(allowed: {_listed(allowed.nodeSelectorKeys)})"
            )
    for position, volume in enumerate(executor.volumes or []):
        claim = volume.persistentVolumeClaim
        if claim is not None and not any(fnmatchcase(claim.claimName, p) for p in allowed.volumeClaims or []):
            problems.append(
                f"executor.volumes[{position}].persistentVolumeClaim: claim {claim.claimName!r} is not allowed "
                f"{where} (allowed: {_listed(allowed.volumeClaims)}); an emptyDir needs no allowance"
            )
    if allowed.maxParallelism is not None:
        for field, asked in (("parallelism", executor.parallelism), ("maxParallelism", executor.maxParallelism)):
            if asked is not None and asked > allowed.maxParallelism:
                problems.append(f"executor.{field}: {asked} is more than {allowed.maxParallelism}, the cap set {where}")
    if allowed.maxResources is not None:
        problems.extend(_resource_refusals(executor, allowed.maxResources, where))
    problems.extend(_annotation_refusals(executor.podAnnotations or {}))
    return problems


def _resource_refusals(executor: Executor, caps: ResourceCaps, where: str) -> list[str]:
    resources = executor.resources
    requests = (resources.requests if resources else None) or {}
    limits = (resources.limits if resources else None) or {}
    problems = []
    for kind, capped, asked in (("requests", caps.requests, requests), ("limits", caps.limits, limits)):
        for name, cap in capped.items():
            field = f"executor.resources.{kind}.{name}"
            # An unset request defaults to the limit (Kubernetes does the same); an unset limit is no limit at all.
            value = asked.get(name) or (limits.get(name) if kind == "requests" else None)
            if value is None:
                if kind == "limits":
                    problems.append(f"{field}: must be set: a limit of at most {cap} is required {where}")
                continue
            try:
                over = parse_quantity(value) > parse_quantity(cap)
            except NotAQuantity as error:
                problems.append(f"{field}: {error}")
                continue
            if over:
                problems.append(f"{field}: {value} is more than {cap}, the cap set {where}")
    return problems


def _annotation_refusals(annotations: Mapping[str, str]) -> list[str]:
    """Annotations through which a pod could loosen its confinement: never the study's to set."""
    problems = []
    for key, value in annotations.items():
        if key.startswith(_SECCOMP):
            problems.append(
                f"executor.podAnnotations[{key}]: a study may not set the pods' seccomp profile by annotation "
                "(the operator sets RuntimeDefault)"
            )
        elif key.startswith(_APPARMOR) and not (value == "runtime/default" or value.startswith("localhost/")):
            problems.append(
                f"executor.podAnnotations[{key}]: {value!r} would loosen the pods' AppArmor profile; "
                "only runtime/default or localhost/<profile> may be set"
            )
    return problems


def _toleration(toleration: Mapping[str, Any]) -> str:
    value = toleration.get("value")
    return (
        f"toleration {toleration.get('key') or '<any key>'} {toleration.get('operator') or 'Equal'}"
        f"{f'={value}' if value else ''} {toleration.get('effect') or '<any effect>'}"
    )


def _listed(names: list[str] | None) -> str:
    return ", ".join(names) if names else "none"
