"""The operator admin's executor policy: what a study may ask of its pods, and how asking for more is refused."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from core_builders import Study, at, make_spec

from bentham.api.spec import Executor
from bentham.core.executor_policy import (
    AllowedToleration,
    ExecutorPolicy,
    ExecutorPolicyInvalid,
    executor_policy_of,
    refusals,
)
from bentham.core.quantities import NotAQuantity, parse_quantity

NAMESPACE = "tenant-acme"

POLICY = executor_policy_of(
    """
default:
  serviceAccounts: [bentham-executor]
  tolerations:
    - {key: dedicated, operator: Equal, value: bentham, effect: NoSchedule}
    - {key: spot, operator: Exists}
  nodeSelectorKeys: [kubernetes.io/arch, pool]
  volumeClaims: [evidence, "shared-*"]
  maxParallelism: 20
  maxResources:
    requests: {cpu: "1", memory: 1Gi}
    limits: {cpu: "2", memory: 2Gi}
namespaces:
  tenant-big:
    maxParallelism: 200
  tenant-*:
    serviceAccounts: []
"""
)


def executor(**fields: Any) -> Executor:
    return Executor.model_validate({"image": "registry.example/executor:1", **fields})


BOUNDED = {"limits": {"cpu": "500m", "memory": "512Mi"}}


def refused(policy: ExecutorPolicy = POLICY, namespace: str = "team-x", **fields: Any) -> list[str]:
    """What the policy refuses of an executor with `fields` (and resources within POLICY's caps unless given)."""
    return refusals(executor(**{"resources": BOUNDED, **fields}), namespace, policy)


def test_nothing_configured_allows_the_plain_executor_of_every_example() -> None:
    assert refused(ExecutorPolicy(), parallelism=1_000, maxParallelism=1_000) == []
    assert refused(ExecutorPolicy(), resources={"limits": {"memory": "64Gi"}}) == []


def test_nothing_configured_allows_no_service_account_toleration_or_node_selector() -> None:
    problems = refused(
        ExecutorPolicy(),
        namespace=NAMESPACE,
        serviceAccountName="default",
        tolerations=[{"key": "dedicated", "operator": "Exists"}],
        nodeSelector={"kubernetes.io/os": "linux"},
    )
    assert problems == [
        "executor.serviceAccountName: ServiceAccount 'default' is not allowed for namespace tenant-acme by the "
        "operator's executor policy (allowed: none); leave it unset to run without a token",
        "executor.tolerations[0]: toleration dedicated Exists <any effect> is not allowed for namespace "
        "tenant-acme by the operator's executor policy (allowed: none)",
        "executor.nodeSelector: key 'kubernetes.io/os' is not allowed for namespace tenant-acme by the "
        "operator's executor policy (allowed: none)",
    ]


def test_what_the_policy_lists_is_allowed() -> None:
    assert (
        refused(
            serviceAccountName="bentham-executor",
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "bentham", "effect": "NoSchedule"},
                {"key": "spot", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
                {"key": "spot", "value": "yes"},
            ],
            nodeSelector={"pool": "egress", "kubernetes.io/arch": "amd64"},
            parallelism=20,
            maxParallelism=20,
            resources={"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2048Mi"}},
        )
        == []
    )


def test_a_service_account_not_listed_is_refused_naming_the_allowed_ones() -> None:
    assert refused(serviceAccountName="admin") == [
        "executor.serviceAccountName: ServiceAccount 'admin' is not allowed for namespace team-x by the "
        "operator's executor policy (allowed: bentham-executor); leave it unset to run without a token"
    ]


@pytest.mark.parametrize(
    "toleration",
    [
        {"operator": "Exists"},  # every taint
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},  # any value, where one is allowed
        {"key": "dedicated", "operator": "Equal", "value": "other", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "bentham"},  # every effect, where one is allowed
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        {"key": "dedicated", "operator": "Lt", "value": "3", "effect": "NoSchedule"},  # not Equal: refused
    ],
)
def test_a_toleration_broader_than_any_allowed_one_is_refused(toleration: dict[str, Any]) -> None:
    [problem] = refused(tolerations=[toleration])
    assert problem.startswith("executor.tolerations[0]: toleration ")
    assert "(allowed: dedicated Equal=bentham NoSchedule, spot Exists <any effect>)" in problem


def test_exists_without_a_key_is_allowed_only_where_the_policy_allows_every_toleration() -> None:
    everything = ExecutorPolicy.model_validate({"default": {"tolerations": [{"operator": "Exists"}]}})
    assert refused(everything, tolerations=[{"operator": "Exists"}, {"key": "gpu", "operator": "Exists"}]) == []
    assert not AllowedToleration(key="gpu", operator="Exists").admits({"operator": "Exists"})
    assert AllowedToleration(key="gpu", operator="Exists").admits({"key": "gpu", "operator": "Exists"})


def test_node_selector_keys_are_checked_one_by_one() -> None:
    assert refused(nodeSelector={"pool": "a", "node-role.kubernetes.io/control-plane": ""}) == [
        "executor.nodeSelector: key 'node-role.kubernetes.io/control-plane' is not allowed for namespace team-x "
        "by the operator's executor policy (allowed: kubernetes.io/arch, pool)"
    ]


def test_parallelism_above_the_namespaces_cap_is_refused() -> None:
    assert refused(parallelism=21, maxParallelism=40) == [
        "executor.parallelism: 21 is more than 20, the cap set for namespace team-x by the operator's executor policy",
        "executor.maxParallelism: 40 is more than 20, the cap set for namespace team-x by the operator's "
        "executor policy",
    ]
    assert refused(namespace="tenant-big", parallelism=150) == []


def test_a_namespace_entry_replaces_only_the_fields_it_sets() -> None:
    big = POLICY.allowances("tenant-big")
    assert big.maxParallelism == 200 and big.serviceAccounts == ["bentham-executor"]
    globbed = POLICY.allowances("tenant-small")  # the glob, not the default, for this one field
    assert globbed.serviceAccounts == [] and globbed.maxParallelism == 20
    assert POLICY.allowances("team-x") == POLICY.default


def test_resources_above_a_cap_are_refused_with_the_cap() -> None:
    problems = refused(
        resources={"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}}
    )
    assert problems == [
        "executor.resources.requests.cpu: 1500m is more than 1, the cap set for namespace team-x by the "
        "operator's executor policy",
        "executor.resources.limits.memory: 3Gi is more than 2Gi, the cap set for namespace team-x by the "
        "operator's executor policy",
    ]


def test_a_capped_limit_must_be_set_and_an_unset_request_counts_as_its_limit() -> None:
    assert refused(resources=None) == [
        "executor.resources.limits.cpu: must be set: a limit of at most 2 is required for namespace team-x by "
        "the operator's executor policy",
        "executor.resources.limits.memory: must be set: a limit of at most 2Gi is required for namespace team-x "
        "by the operator's executor policy",
    ]
    # No request: Kubernetes requests the limit, which is above the request cap.
    [problem] = refused(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1536Mi"}})
    assert problem.startswith("executor.resources.requests.memory: 1536Mi is more than 1Gi")


def test_a_resource_that_is_not_a_quantity_is_refused_naming_it() -> None:
    problems = refused(resources={"limits": {"cpu": "two", "memory": "1Gi"}})
    assert len(problems) == 2  # the limit, and the request that defaults to it
    problem = problems[1]
    assert problem.startswith("executor.resources.limits.cpu: 'two' is not a Kubernetes quantity")


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("container.apparmor.security.beta.kubernetes.io/executor", "unconfined"),
        ("seccomp.security.alpha.kubernetes.io/pod", "runtime/default"),
    ],
)
def test_annotations_that_would_loosen_the_pods_confinement_are_refused(annotation: str, value: str) -> None:
    [problem] = refused(ExecutorPolicy(), podAnnotations={annotation: value, "team": "research"})
    assert problem.startswith(f"executor.podAnnotations[{annotation}]: ")


def test_an_apparmor_profile_that_tightens_is_allowed() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/executor"
    assert refused(ExecutorPolicy(), podAnnotations={key: "localhost/executor"}) == []
    assert refused(ExecutorPolicy(), podAnnotations={key: "runtime/default"}) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [("100m", "0.1"), ("2", "2"), ("1Ki", "1024"), ("1.5Gi", "1610612736"), ("1e3", "1000"), ("1E", "1e18"),
     ("5M", "5000000"), ("250u", "0.00025"), (".5", "0.5")],
)  # fmt: skip
def test_quantities_read_as_kubernetes_reads_them(text: str, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "1.2.3", "1 Gi", "1gi", "Gi", "1e", "--1", "1KiB"])
def test_what_is_not_a_quantity_is_said_so(text: str) -> None:
    with pytest.raises(NotAQuantity):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("default: {serviceAcounts: [x]}", "default.serviceAcounts"),
        ("default: {maxParallelism: 0}", "default.maxParallelism"),
        ("default: {maxResources: {limits: {cpu: lots}}}", "default.maxResources.limits.cpu"),
        ("default: {tolerations: [{key: a, operator: Gt}]}", "default.tolerations[0].operator"),
        ("namespaces: {tenant-a: {maxResources: {requests: {memory: -1Gi}}}}", "memory"),
        ("[not, a, mapping]", "ExecutorPolicy"),
    ],
)
def test_a_policy_file_that_cannot_be_used_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(ExecutorPolicyInvalid, match=r"policy\.yaml is not a usable executor policy") as raised:
        executor_policy_of(text, "policy.yaml")
    assert field in str(raised.value)


def test_an_empty_policy_file_is_the_default() -> None:
    assert executor_policy_of("") == ExecutorPolicy()


def with_executor(spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    spec["executor"].update(fields)
    return spec


def test_a_new_study_asking_for_more_fails_with_a_condition_naming_the_field_and_the_rule() -> None:
    study = Study(with_executor(make_spec(), serviceAccountName="admin"))

    decided = study.step()

    assert study.state == "failed" and decided.create == []
    failed = study.condition("Failed")
    assert failed["reason"] == "ExecutorNotAllowed"
    assert (
        "executor.serviceAccountName: ServiceAccount 'admin' is not allowed for namespace tenant-acme"
        in (failed["message"])
    )


def test_a_running_study_the_policy_no_longer_allows_is_held_and_carries_on_once_allowed() -> None:
    allowing = ExecutorPolicy.model_validate({"default": {"maxParallelism": 10}})
    study = Study(make_spec(parallelism=10), executor_policy=allowing)
    started = study.step()
    assert study.state == "executing" and len(started.create) == 8

    study.executor_policy = ExecutorPolicy.model_validate({"default": {"maxParallelism": 4}})  # the admin tightens it
    held = study.step(at(1))

    assert study.state == "executing" and held.create == [] and held.delete == []
    spec_valid = study.condition("SpecValid")
    assert (spec_valid["status"], spec_valid["reason"]) == ("False", "ExecutorNotAllowed")
    assert "executor.parallelism: 10 is more than 4" in spec_valid["message"]

    study.spec = with_executor(study.spec, parallelism=4)
    study.step(at(2))
    assert study.condition("SpecValid")["status"] == "True"


def test_a_cap_written_as_a_yaml_number_is_the_quantity_it_spells() -> None:
    policy = executor_policy_of("default: {maxResources: {limits: {cpu: 2, memory: 1Gi}}}")
    assert policy.default.maxResources is not None and policy.default.maxResources.limits == {
        "cpu": "2",
        "memory": "1Gi",
    }
    assert refused(policy, resources={"limits": {"cpu": "2500m", "memory": "1Gi"}}) == [
        "executor.resources.limits.cpu: 2500m is more than 2, the cap set for namespace team-x by the operator's "
        "executor policy"
    ]


def claim(name: str, claim_name: str) -> dict[str, Any]:
    return {"name": name, "mountPath": f"/{name}", "persistentVolumeClaim": {"claimName": claim_name}}


def test_a_claim_is_mounted_only_when_the_policy_names_it_and_a_scratch_folder_always() -> None:
    scratch = {"name": "tmp", "mountPath": "/tmp", "emptyDir": {}}
    assert refused(ExecutorPolicy(), volumes=[scratch]) == []
    assert refused(volumes=[claim("evidence", "evidence"), claim("shared", "shared-2026"), scratch]) == []
    assert refused(volumes=[scratch, claim("db", "postgres-data")]) == [
        "executor.volumes[1].persistentVolumeClaim: claim 'postgres-data' is not allowed for namespace team-x "
        "by the operator's executor policy (allowed: evidence, shared-*); an emptyDir needs no allowance"
    ]
    assert refused(ExecutorPolicy(), volumes=[claim("evidence", "evidence")]) == [
        "executor.volumes[0].persistentVolumeClaim: claim 'evidence' is not allowed for namespace team-x "
        "by the operator's executor policy (allowed: none); an emptyDir needs no allowance"
    ]
