"""The Helm chart: it lints, renders valid objects, installs, and its RBAC is enough for the operator and no more.

The operator runs here as the chart's ServiceAccount, with a token from the TokenRequest API. Not
with kubeconfig impersonation (`users[].user.as`): kubectl honours it, but the Python client, and
kopf, which takes its credentials from it, ignore it and would silently run as the admin (the last
test below pins that).
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from bench.operator_process import start_operator
from bentham.api.manifest import SurfaceId
from bentham.core.executor_policy import executor_policy_of
from bentham.core.pricing import pricing_with_overrides
from bentham.core.webhook_policy import allowed_networks
from tests.shipping import (
    CHART,
    REPO,
    chart_release,
    helm,
    kustomize,
    only,
    render_chart,
    rule_set,
    serviceaccount_kubeconfig,
    stop_operator_after_cleanup,
    strict_schema_errors,
    username,
)
from tests.support import LOOPBACK_WEBHOOKS, Cluster, Studies, eventually, namespace_for_test, study

EVERY_FEATURE: dict[str, Any] = {
    "replicas": 2,
    "leaderElection": {"enabled": True},
    "watchNamespaces": ["tenant-a", "tenant-*"],  # a pattern: Studies, Jobs, pods and Events cluster-wide
    "metrics": {"enabled": True, "port": 9090, "serviceAnnotations": {"a": "b"}},
    "serviceAccount": {"create": True, "name": "operator", "annotations": {"team": "studies"}},
    "rbac": {"create": True, "clusterWide": True, "secretAccess": {"namespaces": ["tenant-a", "tenant-b"]}},
    "legalHold": {"enabled": True, "group": "acme:counsel"},
    "webhooks": {"allowedCidrs": ["10.96.0.0/12", "fd00::/8"]},
    "extraEnv": [{"name": "BENTHAM_BATCH_WINDOW_SECONDS", "value": "0.5"}],
    "pricing": {
        "unknownSurfaceRequestUsd": 0.02,
        "surfaces": {"grok": {"defaultModel": "grok-3", "models": {"grok-3": {}}}},
    },
    "imagePullSecrets": [{"name": "registry"}],
    "podAnnotations": {"x": "y"},
    "podLabels": {"team": "studies"},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "operators", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
                ]
            }
        }
    },
}
# Namespaced RBAC: a Role in each watched namespace, Secrets read in one of them.
NAMESPACED: dict[str, Any] = {
    "watchNamespaces": ["tenant-a", "tenant-b"],
    "rbac": {"secretAccess": {"namespaces": ["tenant-a"]}},
}


def env_of(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = only(documents, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_chart_passes_helm_lint_strict_with_defaults_every_feature_and_namespaced_rbac(tmp_path: Path) -> None:
    helm("lint", "--strict", str(CHART))
    for name, values in (("every-feature", EVERY_FEATURE), ("namespaced", NAMESPACED)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(values))
        helm("lint", "--strict", str(CHART), "--values", str(path))


@pytest.mark.parametrize("values", [{}, EVERY_FEATURE, NAMESPACED], ids=["defaults", "every-feature", "namespaced"])
def test_chart_renders_objects_valid_in_strict_mode(values: dict[str, Any]) -> None:
    documents = render_chart(values)

    assert only(documents, "CustomResourceDefinition"), "--include-crds renders the CRD, validated too"
    assert strict_schema_errors(documents) == []


def test_kustomize_and_chart_install_the_same_operator_rules() -> None:
    (chart_role,) = only(render_chart({}), "ClusterRole")
    (kustomize_role,) = only(kustomize(REPO / "manifests"), "ClusterRole")

    assert rule_set(chart_role["rules"]) == rule_set(kustomize_role["rules"])


KOPF_CLUSTER_WIDE = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "*", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "*", "watch"),
}
NAMESPACE_WATCH = {("", "namespaces", "*", "list"), ("", "namespaces", "*", "watch")}


def test_watching_namespaces_moves_the_study_rules_into_a_role_in_each_and_keeps_only_kopfs_cluster_wide() -> None:
    (all_namespaces,) = only(render_chart({}), "ClusterRole")
    watching = render_chart({"watchNamespaces": ["tenant-a", "tenant-b"]})
    (cluster_role,) = only(watching, "ClusterRole")
    roles = only(watching, "Role")
    bindings = only(watching, "RoleBinding")

    assert rule_set(cluster_role["rules"]) == KOPF_CLUSTER_WIDE | NAMESPACE_WATCH
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["tenant-a", "tenant-b"]
    for role in roles:  # together, exactly what the operator was granted everywhere before
        assert rule_set(role["rules"]) == rule_set(all_namespaces["rules"]) - KOPF_CLUSTER_WIDE
    assert sorted((b["metadata"]["namespace"], b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings) == [
        ("tenant-a", "Role", "bentham-operator"),
        ("tenant-b", "Role", "bentham-operator"),
    ]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "bentham-operator", "namespace": "bentham-system"}
        ]
    assert env_of(watching)["BENTHAM_NAMESPACES"] == "tenant-a,tenant-b"
    assert env_of(render_chart({}))["BENTHAM_NAMESPACES"] == ""


def test_kustomize_namespaced_component_installs_the_charts_namespaced_rbac(tmp_path: Path) -> None:
    """manifests/namespaced, used as its header says, beside manifests/ in a kustomization of one's own."""
    base, component = (os.path.relpath(REPO / path, tmp_path) for path in ("manifests", "manifests/namespaced"))
    (tmp_path / "kustomization.yaml").write_text(f"resources:\n  - {base}\ncomponents:\n  - {component}\n")
    plain = kustomize(tmp_path)
    chart = render_chart({"watchNamespaces": ["tenant-a"]})

    assert strict_schema_errors(plain) == []
    for kind in ("ClusterRole", "Role"):
        assert [rule_set(d["rules"]) for d in only(plain, kind)] == [rule_set(d["rules"]) for d in only(chart, kind)]
    (role,) = only(plain, "Role")
    (binding,) = only(plain, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "tenant-a"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bentham-operator", "namespace": "bentham-system"}
    ]
    assert env_of(plain)["BENTHAM_NAMESPACES"] == env_of(chart)["BENTHAM_NAMESPACES"] == "tenant-a"


def test_a_namespace_pattern_needs_cluster_wide_rbac_asked_for_by_name() -> None:
    refused = helm("template", "x", str(CHART), "--set-json", 'watchNamespaces=["tenant-a","tenant-*"]', check=False)
    assert refused.returncode != 0
    assert 'watchNamespaces: "tenant-*" is a pattern' in refused.stderr and "rbac.clusterWide=true" in refused.stderr

    (all_namespaces,) = only(render_chart({}), "ClusterRole")
    broad = render_chart({"watchNamespaces": ["tenant-*"], "rbac": {"clusterWide": True}})
    (cluster_role,) = only(broad, "ClusterRole")
    assert rule_set(cluster_role["rules"]) == rule_set(all_namespaces["rules"]) | NAMESPACE_WATCH
    assert not only(broad, "Role")


def test_namespaced_rbac_refuses_secret_grants_beyond_the_watched_namespaces() -> None:
    cases = {
        "rbac.secretAccess.clusterWide grants every Secret": {"clusterWide": True},
        'rbac.secretAccess.namespaces: "tenant-b" is not in watchNamespaces': {"namespaces": ["tenant-b"]},
    }
    for message, secret_access in cases.items():
        values = json.dumps({"watchNamespaces": ["tenant-a"], "rbac": {"secretAccess": secret_access}})
        refused = helm("template", "x", str(CHART), "--values", "-", stdin=values, check=False)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr


def test_secret_access_is_a_role_in_each_named_namespace_not_cluster_wide() -> None:
    documents = render_chart({"rbac": {"secretAccess": {"namespaces": ["tenant-a", "tenant-b"]}}})
    (cluster_role,) = only(documents, "ClusterRole")

    assert not any(resource == "secrets" for _, resource, _, _ in rule_set(cluster_role["rules"]))
    roles = only(documents, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["tenant-a", "tenant-b"]
    for role in roles:
        assert rule_set(role["rules"]) == {("", "secrets", "*", "get")}
    bindings = only(documents, "RoleBinding")
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == ["tenant-a", "tenant-b"]

    (broad,) = only(render_chart({"rbac": {"secretAccess": {"clusterWide": True}}}), "ClusterRole")
    assert ("", "secrets", "*", "get") in rule_set(broad["rules"])


def test_leader_election_grants_only_the_operators_lease_in_its_namespace() -> None:
    documents = render_chart({"leaderElection": {"enabled": True}, "replicas": 2}, "ops")
    (role,) = only(documents, "Role")
    (deployment,) = only(documents, "Deployment")

    assert role["metadata"]["namespace"] == "ops"
    assert rule_set(role["rules"]) == {
        ("coordination.k8s.io", "leases", "*", "create"),
        ("coordination.k8s.io", "leases", "bentham-operator", "get"),
        ("coordination.k8s.io", "leases", "bentham-operator", "update"),
    }
    assert env_of(documents)["BENTHAM_LEADER_ELECT"] == "true"
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert not only(render_chart({}), "Role")


def test_webhooks_may_reach_only_public_addresses_unless_the_chart_allows_cidrs() -> None:
    assert "BENTHAM_WEBHOOK_ALLOWED_CIDRS" not in env_of(render_chart({}))
    allowing = render_chart({"webhooks": {"allowedCidrs": ["10.96.0.0/12", "fd00::/8"]}})

    cidrs = env_of(allowing)["BENTHAM_WEBHOOK_ALLOWED_CIDRS"]
    assert cidrs == "10.96.0.0/12,fd00::/8"
    assert [str(n) for n in allowed_networks(cidrs)] == ["10.96.0.0/12", "fd00::/8"]  # as the operator reads it


def test_chart_refuses_two_replicas_without_leader_election() -> None:
    refused = helm("template", "x", str(CHART), "--set", "replicas=2", check=False)

    assert refused.returncode != 0
    assert "replicas > 1 needs leaderElection.enabled" in refused.stderr


def test_chart_refuses_unknown_values() -> None:
    refused = helm("template", "x", str(CHART), "--set", "defaultParallelism=20", check=False)

    assert refused.returncode != 0
    assert "defaultParallelism" in refused.stderr


def mounted_pricing_file(documents: list[dict[str, Any]]) -> tuple[str, str]:
    """Where the operator is told to read its pricing file, as (ConfigMap name, key) of the volume mounted there."""
    (deployment,) = only(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    path = env_of(documents)["BENTHAM_PRICING_FILE"]
    (mount,) = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume["configMap"]["name"], path.removeprefix(mount["mountPath"] + "/")


def test_the_pricing_value_is_a_configmap_mounted_where_the_operator_reads_it_and_rolls_the_pod() -> None:
    tiny = {"surfaces": {"openai-api": {"defaultModel": "house", "models": {"house": {"requestUsd": 0.00001}}}}}
    documents = render_chart({"pricing": tiny})
    (configmap,) = only(documents, "ConfigMap")

    name, key = mounted_pricing_file(documents)
    assert (name, key) == (configmap["metadata"]["name"], "pricing.yaml")
    table = pricing_with_overrides(configmap["data"][key])  # as the operator reads it at start
    assert table.price_of(SurfaceId.OPENAI_API, None).per_request == Decimal("0.00001")

    def checksum(values: dict[str, Any]) -> str:
        (deployment,) = only(render_chart(values), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/pricing"])

    assert checksum({"pricing": tiny}) != checksum({"pricing": {"unknownSurfaceRequestUsd": 0.02}})


def test_the_executor_policy_value_is_a_configmap_mounted_where_the_operator_reads_it() -> None:
    policy = {
        "default": {"serviceAccounts": ["bentham-executor"], "maxResources": {"limits": {"cpu": 2, "memory": "2Gi"}}},
        "namespaces": {"tenant-*": {"maxParallelism": 50}},
    }
    documents = render_chart({"executorPolicy": policy})
    (configmap,) = only(documents, "ConfigMap")
    (deployment,) = only(documents, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    path = env_of(documents)["BENTHAM_EXECUTOR_POLICY_FILE"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]

    read = executor_policy_of(configmap["data"][path.removeprefix(mount["mountPath"] + "/")])  # as at start
    assert read.allowances("tenant-a").maxParallelism == 50
    assert read.default.maxResources is not None and read.default.maxResources.limits == {"cpu": "2", "memory": "2Gi"}
    assert "checksum/executor-policy" in deployment["spec"]["template"]["metadata"]["annotations"]

    assert "BENTHAM_EXECUTOR_POLICY_FILE" not in env_of(render_chart({}))
    refused = helm("template", "x", str(CHART), "--set-json", 'executorPolicy={"default": {"serviceAcounts": []}}',
                   check=False)  # fmt: skip
    assert refused.returncode != 0 and "serviceAcounts" in refused.stderr


def test_pricing_from_a_configmap_of_ones_own_or_none_at_all() -> None:
    own = render_chart({"pricingConfigMap": "house-prices"})
    assert not only(own, "ConfigMap")
    assert mounted_pricing_file(own) == ("house-prices", "pricing.yaml")

    assert "BENTHAM_PRICING_FILE" not in env_of(render_chart({}))
    refused = helm("template", "x", str(CHART), "--set", "pricingConfigMap=a", "--set-json",
                   'pricing={"rangeLowMultiplier": 0.5}', check=False)  # fmt: skip
    assert refused.returncode != 0 and "set pricing or pricingConfigMap, not both" in refused.stderr


def test_metrics_open_the_port_service_and_scrape_annotations() -> None:
    documents = render_chart({"metrics": {"enabled": True, "port": 9100}})
    (service,) = only(documents, "Service")
    (deployment,) = only(documents, "Deployment")
    pod = deployment["spec"]["template"]

    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in pod["spec"]["containers"][0]["ports"]
    assert env_of(documents)["BENTHAM_METRICS_PORT"] == "9100"
    assert not only(render_chart({}), "Service")


def legal_hold_generator() -> Any:
    spec = importlib.util.spec_from_file_location("legal_hold_policy", REPO / "hack" / "legal_hold_policy.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    return generator


def test_legal_hold_policy_of_manifests_and_chart_is_generated_from_its_one_definition() -> None:
    # After editing hack/legal_hold_policy.py, run `make legal-hold-policy`.
    generator = legal_hold_generator()

    assert (REPO / "manifests" / "legal-hold.yaml").read_text() == generator.render_manifests()
    assert (CHART / "templates" / "legal-hold.yaml").read_text() == generator.render_chart()


def legal_hold_objects(documents: list[dict[str, Any]]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    (policy,) = only(documents, "ValidatingAdmissionPolicy")
    (binding,) = only(documents, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == binding["metadata"]["name"]
    return policy, binding


def test_chart_and_kustomize_ship_the_same_legal_hold_policy_named_for_the_release() -> None:
    chart_policy, chart_binding = legal_hold_objects(render_chart({}, "ops"))
    plain_policy, plain_binding = legal_hold_objects(kustomize(REPO / "manifests"))

    assert chart_policy["metadata"]["name"] == "ops.bentham-operator-legal-hold"
    assert plain_policy["metadata"]["name"] == "bentham-operator-legal-hold"
    assert chart_policy["spec"] == plain_policy["spec"]
    assert chart_binding["spec"]["validationActions"] == plain_binding["spec"]["validationActions"] == ["Deny"]
    rules = plain_policy["spec"]["matchConstraints"]["resourceRules"]
    assert [(rule["resources"], rule["operations"]) for rule in rules] == [(["studies"], ["UPDATE", "DELETE"])]
    assert plain_policy["spec"]["variables"][0] == {"name": "legalGroup", "expression": '"bentham:legal"'}


def test_legal_hold_group_is_a_chart_value_and_the_policy_can_be_left_to_another_release() -> None:
    for group in ("acme:counsel", 'o\'brien "legal"'):
        policy, _ = legal_hold_objects(render_chart({"legalHold": {"group": group}}))
        assert policy["spec"]["variables"][0] == {"name": "legalGroup", "expression": json.dumps(group)}

    off = render_chart({"legalHold": {"enabled": False}})
    assert not only(off, "ValidatingAdmissionPolicy") and not only(off, "ValidatingAdmissionPolicyBinding")
    refused = helm("template", "x", str(CHART), "--set", "legalHold.group=", check=False)
    assert refused.returncode != 0
    assert "legalHold" in refused.stderr


def test_kustomize_patch_in_the_legal_hold_manifests_header_names_another_group(tmp_path: Path) -> None:
    """The patch that manifests/legal-hold.yaml's header shows, used as it says, in a kustomization of one's own."""
    header = (REPO / "manifests" / "legal-hold.yaml").read_text().split("\napiVersion:", 1)[0]
    recipe = header.split("#   patches:\n", 1)[1]
    patches = "\n".join(line.removeprefix("# ") for line in recipe.splitlines())
    base = os.path.relpath(REPO / "manifests", tmp_path)  # kustomize takes no absolute paths
    (tmp_path / "kustomization.yaml").write_text(f"resources:\n  - {base}\npatches:\n{patches}\n")

    policy, _ = legal_hold_objects(kustomize(tmp_path))

    assert policy["spec"]["variables"][0] == {"name": "legalGroup", "expression": '"acme:counsel"'}


# --------------------------------------------------------------------------------------------
# On the local control plane


@pytest.fixture(scope="module")
def rbac_release(study_crd: Cluster) -> Iterator[tuple[str, str]]:
    """The chart in a namespace of its own, watching one study namespace (a Role there) and reading its Secrets.

    Zero replicas: the operator runs below as a local process with the chart's identity.
    """
    with (
        namespace_for_test(study_crd, "u-chart") as release_namespace,
        namespace_for_test(study_crd, "u-chart-studies") as studies_namespace,
    ):
        values = {
            "replicas": 0,
            "watchNamespaces": [studies_namespace],
            "rbac": {"secretAccess": {"namespaces": [studies_namespace]}},
        }
        with chart_release(study_crd, release_namespace, values):
            yield release_namespace, studies_namespace


@pytest.fixture(scope="module")
def chart_identity(study_crd: Cluster, rbac_release: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount."""
    path = tmp_path_factory.mktemp("chart-identity") / "kubeconfig"
    return serviceaccount_kubeconfig(study_crd, rbac_release[0], "bentham-operator", path)


def test_chart_installs_and_its_operator_pod_runs_locked_down(study_crd: Cluster) -> None:
    with namespace_for_test(study_crd, "u-chart-pod") as namespace:
        # kwok plays the pod; the annotation keeps it running (the image is never pulled here).
        values = {"podAnnotations": {"sim.bentham.io/duration": "1h"}}
        with chart_release(study_crd, namespace, values, "--wait", "--timeout", "60s"):
            apps = client.AppsV1Api(study_crd.api)
            deployment = apps.read_namespaced_deployment("bentham-operator", namespace)
            assert deployment.status.ready_replicas == 1
            (pod,) = (
                client.CoreV1Api(study_crd.api)
                .list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=bentham-operator")
                .items
            )
            assert pod.status.phase == "Running"
            assert pod.spec.service_account_name == "bentham-operator"
            container = pod.spec.containers[0]
            assert container.security_context.read_only_root_filesystem is True
            assert container.security_context.capabilities.drop == ["ALL"]
            roles = client.RbacAuthorizationV1Api(study_crd.api)
            assert roles.read_cluster_role(f"{namespace}:bentham-operator").rules


def test_chart_identity_is_the_service_account_for_kubectl_and_the_python_client(
    study_crd: Cluster, rbac_release: tuple[str, str], chart_identity: Path
) -> None:
    expected = f"system:serviceaccount:{rbac_release[0]}:bentham-operator"

    assert username(chart_identity) == expected
    whoami = study_crd.kubectl("--kubeconfig", str(chart_identity), "auth", "whoami", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == expected


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[tuple[str | None, dict[str, Any]]]]]:
    """A local webhook: its URL, and the (Authorization header, JSON body) of each POST it received."""
    received: list[tuple[str | None, dict[str, Any]]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.headers.get("Authorization"), json.loads(body or b"{}")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def event_reasons(cluster: Cluster, namespace: str, name: str) -> set[str]:
    """The reasons of the Events about object `name` in `namespace`."""
    events = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return {event.reason for event in events.items}


def test_operator_completes_a_study_and_notifies_through_a_secret_under_the_charts_rbac(
    study_crd: Cluster, rbac_release: tuple[str, str], chart_identity: Path, tmp_path: Path
) -> None:
    _, studies_namespace = rbac_release
    studies = Studies(study_crd, studies_namespace)
    body = study("under-rbac", queries=2, locations=("us-nyc", "uk-lon"))
    body["spec"]["notifications"] = {"secretRef": {"name": "hub"}}
    with webhook_receiver() as (url, received):
        client.CoreV1Api(study_crd.api).create_namespaced_secret(
            studies_namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="hub"), string_data={"url": url, "authorization": "Bearer s3cret"}
            ),
        )
        operator = start_operator(
            study_crd.kubeconfig,
            tmp_path / "operator.log",
            "--namespace",
            studies_namespace,
            env={"KUBECONFIG": str(chart_identity), **LOOPBACK_WEBHOOKS},
        )
        try:
            studies.create(body)
            status = studies.wait_for_state("under-rbac", "complete", "failed", timeout_s=90)
            eventually(lambda: not studies.jobs("under-rbac"), what="the finished Jobs to be deleted")
            eventually(lambda: received, timeout_s=30, what="a notification through the Secret's URL")
            # The completing pass posts its Events after the status write and the Jobs' deletion,
            # and `received` may hold only earlier notifications (created, started): wait for the Events too.
            eventually(
                lambda: {"Started", "Completed"} <= event_reasons(study_crd, studies_namespace, "under-rbac"),
                timeout_s=30,
                what="the Started and Completed Events",
            )
        finally:
            stop_operator_after_cleanup(operator)

    log = operator.log.read_text()
    assert status["state"] == "complete", status.get("message")
    for refusal in ("forbidden", "not enough permissions"):  # an ApiException's reason, kopf's warnings
        assert refusal not in log.lower(), operator.log_tail()
    assert {authorization for authorization, _ in received} == {"Bearer s3cret"}


def test_chart_identity_is_refused_outside_its_rules(
    study_crd: Cluster, rbac_release: tuple[str, str], chart_identity: Path
) -> None:
    release_namespace, studies_namespace = rbac_release
    core = client.CoreV1Api(study_crd.api)
    for namespace in (release_namespace, studies_namespace):
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="webhook"), string_data={"url": "https://hooks.example/x"}
            ),
        )
    api = config.new_client_from_config(config_file=str(chart_identity))
    as_operator = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)

    def status_of(call: Any, *args: Any, **kwargs: Any) -> int:
        try:
            call(*args, **kwargs)
        except client.ApiException as error:
            return int(error.status)
        return 200

    try:
        # Granted: reading a watched tenant's Secret (rbac.secretAccess), listing its studies (its Role).
        assert status_of(as_operator.read_namespaced_secret, "webhook", studies_namespace) == 200
        assert (
            status_of(custom.list_namespaced_custom_object, "bentham.io", "v1alpha1", studies_namespace, "studies")
            == 200
        )
        # Refused: everything else, studies outside the watched namespace included.
        assert status_of(custom.list_cluster_custom_object, "bentham.io", "v1alpha1", "studies") == 403
        assert status_of(as_operator.list_namespaced_pod, release_namespace) == 403
        assert status_of(as_operator.read_namespaced_secret, "webhook", release_namespace) == 403
        assert status_of(as_operator.delete_namespaced_secret, "webhook", studies_namespace) == 403
        assert status_of(as_operator.list_node) == 403
        assert (
            status_of(
                as_operator.create_namespaced_pod,
                studies_namespace,
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name="p"),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]),
                ),
            )
            == 403
        )
        # The operator can never write a study's spec: only its status.
        studies = Studies(study_crd, studies_namespace)
        paused = study("spec-is-the-users", queries=1, locations=("us-nyc",))
        paused["spec"]["paused"] = True
        studies.create(paused)
        assert (
            status_of(
                custom.patch_namespaced_custom_object,
                "bentham.io",
                "v1alpha1",
                studies_namespace,
                "studies",
                "spec-is-the-users",
                {"spec": {"paused": False}},
            )
            == 403
        )
    finally:
        api.close()


def test_kopf_uses_the_charts_identity_and_needs_namespaces_only_when_given_some(
    study_crd: Cluster, tmp_path: Path
) -> None:
    """The chart watching all namespaces grants no `namespaces`; an operator told to watch one is refused them.

    That refusal comes from kopf's namespace observer, so it also shows kopf authenticates as the token.
    """
    with (
        namespace_for_test(study_crd, "u-chart-all") as release_namespace,
        chart_release(study_crd, release_namespace, {"replicas": 0}),
    ):
        identity = serviceaccount_kubeconfig(study_crd, release_namespace, "bentham-operator", tmp_path / "kc")
        operator = start_operator(
            study_crd.kubeconfig,
            tmp_path / "operator.log",
            "--namespace",
            "u-nothing-here",
            env={"KUBECONFIG": str(identity)},
        )
        refusal = f'User "system:serviceaccount:{release_namespace}:bentham-operator" cannot list resource "namespaces"'
        try:
            eventually(
                lambda: refusal in operator.log.read_text(), timeout_s=30, what="kopf to be refused the namespace list"
            )
        finally:
            stop_operator_after_cleanup(operator)


def test_leader_election_role_lets_the_operator_take_over_its_lease(study_crd: Cluster, tmp_path: Path) -> None:
    """A stale Lease from an old leader: taking it over needs get and update on it, as renewing does."""
    with (
        namespace_for_test(study_crd, "u-chart-ha") as release_namespace,
        chart_release(
            study_crd,
            release_namespace,
            {"replicas": 0, "leaderElection": {"enabled": True}, "watchNamespaces": [release_namespace]},
        ),
    ):
        leases = client.CoordinationV1Api(study_crd.api)
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        leases.create_namespaced_lease(
            release_namespace,
            client.V1Lease(
                metadata=client.V1ObjectMeta(name="bentham-operator"),
                spec=client.V1LeaseSpec(
                    holder_identity="old-leader",
                    lease_duration_seconds=15,
                    acquire_time=long_ago,
                    renew_time=long_ago,
                    lease_transitions=0,
                ),
            ),
        )
        identity = serviceaccount_kubeconfig(study_crd, release_namespace, "bentham-operator", tmp_path / "kc")
        # The environment the chart's Deployment gives its pods.
        environment = {
            "KUBECONFIG": str(identity),
            "BENTHAM_LEADER_ELECT": "true",
            "POD_NAMESPACE": release_namespace,
            "POD_NAME": "replica-a",
        }
        operator = start_operator(
            study_crd.kubeconfig, tmp_path / "operator.log", "--namespace", release_namespace, env=environment
        )
        try:
            eventually(
                lambda: (
                    leases.read_namespaced_lease("bentham-operator", release_namespace).spec.holder_identity
                    == "replica-a"
                ),
                timeout_s=30,
                what="replica-a to hold the Lease",
            )
        finally:
            stop_operator_after_cleanup(operator)

    assert "forbidden" not in operator.log.read_text().lower(), operator.log_tail()


def test_python_client_ignores_kubeconfig_impersonation_which_kubectl_honours(
    study_crd: Cluster, rbac_release: tuple[str, str], tmp_path: Path
) -> None:
    """Why the tests authenticate with a token: an `as:` kubeconfig would run the operator as the admin."""
    service_account = f"system:serviceaccount:{rbac_release[0]}:bentham-operator"
    impersonating = json.loads(study_crd.kubeconfig.read_text())
    impersonating["users"][0]["user"]["as"] = service_account
    path = tmp_path / "impersonating.kubeconfig"
    path.write_text(json.dumps(impersonating))

    whoami = study_crd.kubectl("--kubeconfig", str(path), "auth", "whoami", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == service_account
    assert username(path) != service_account
