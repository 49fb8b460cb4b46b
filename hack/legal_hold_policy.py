#!/usr/bin/env python3
"""Writes the legal-hold admission policy for both installs, from its one definition here:

    python3 hack/legal_hold_policy.py manifests > manifests/legal-hold.yaml
    python3 hack/legal_hold_policy.py chart > charts/bentham-operator/templates/legal-hold.yaml

(`make legal-hold-policy` runs both.) A ValidatingAdmissionPolicy and its binding make
`spec.manifest.legalHold: true` binding in the API server itself, with no operator or webhook
involved: a held Study cannot be deleted, and only members of one group (the chart's
`legalHold.group`, `bentham:legal` by default) may lift the hold. Every other write to a held
Study (pausing, editing, the operator's status writes through the status subresource) is
untouched. tests/integration/test_chart.py fails when either file differs from what this writes,
and checks that the chart renders the same policy as kustomize; tests/integration/test_legal_hold.py
proves the policy on the local control plane.

Standard library only, like the rest of hack/.
"""

from __future__ import annotations

import json
import sys

DEFAULT_GROUP = "bentham:legal"
PLAIN_NAME = "bentham-operator-legal-hold"

# The group is the first variable, so that a kustomize patch can replace it by its path
# (/spec/variables/0/expression); the manifests' header shows that patch.
GROUP_VARIABLE = "legalGroup"

# Everything below the group is the same for every install. CEL, each in a YAML literal block.
VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "heldBefore",
        "has(oldObject.spec) && has(oldObject.spec.manifest) &&\n"
        "has(oldObject.spec.manifest.legalHold) && oldObject.spec.manifest.legalHold == true",
    ),
    (
        # `object` is null on DELETE.
        "heldAfter",
        "object != null && has(object.spec) && has(object.spec.manifest) &&\n"
        "has(object.spec.manifest.legalHold) && object.spec.manifest.legalHold == true",
    ),
    (
        "inLegalGroup",
        "has(request.userInfo.groups) && variables.legalGroup in request.userInfo.groups",
    ),
    (
        "study",
        "'Study ' + oldObject.metadata.name + ' in namespace ' + oldObject.metadata.namespace",
    ),
)

LIFT_COMMAND = (
    "'kubectl patch study ' + oldObject.metadata.name + ' -n ' + oldObject.metadata.namespace +\n"
    r"""' --type=merge -p \'{"spec":{"manifest":{"legalHold":false}}}\''"""
)

# (expression, static message, message expression): the static message is the API server's
# fallback should the expression fail.
VALIDATIONS: tuple[tuple[str, str, str], ...] = (
    (
        "request.operation != 'DELETE' || !variables.heldBefore",
        "this Study is under legal hold (spec.manifest.legalHold: true) and cannot be deleted; "
        "a member of the legal group must lift the hold first",
        "variables.study + ' is under legal hold (spec.manifest.legalHold: true) and cannot be deleted.' +\n"
        "' To delete it, a member of group ' + variables.legalGroup + ' must first lift the hold: ' +\n"
        f"{LIFT_COMMAND}",
    ),
    (
        "request.operation != 'UPDATE' || !variables.heldBefore || variables.heldAfter || variables.inLegalGroup",
        "this Study is under legal hold (spec.manifest.legalHold: true); only a member of the legal group may lift it",
        "variables.study + ' is under legal hold (spec.manifest.legalHold: true): only a member of group ' +\n"
        "variables.legalGroup + ' may lift it, and ' + request.userInfo.username + ' is not one.'",
    ),
)


def block(key: str, text: str, indent: int, item: bool = False) -> str:
    """`key: |-` and `text` as a YAML literal block (the CEL exactly as written, no escaping),
    as the first key of a list item if `item`."""
    column = indent + (2 if item else 0)
    lines = "".join(f"{' ' * (column + 2)}{line}\n" for line in text.splitlines())
    return f"{' ' * indent}{'- ' if item else ''}{key}: |-\n{lines}"


def policy_spec(group_expression: str) -> str:
    """The policy's `spec:`, with the group's CEL expression as it should appear in YAML."""
    text = (
        "spec:\n"
        "  failurePolicy: Fail\n"
        "  matchConstraints:\n"
        "    resourceRules:\n"
        "      # `studies` only: its subresources (the operator's status writes) never match.\n"
        "      - apiGroups: [bentham.io]\n"
        '        apiVersions: ["*"]\n'
        "        operations: [UPDATE, DELETE]\n"
        "        resources: [studies]\n"
        "  variables:\n"
        f"    - name: {GROUP_VARIABLE}\n"
        f"      expression: {group_expression}\n"
    )
    for name, expression in VARIABLES:
        text += f"    - name: {name}\n" + block("expression", expression, 6)
    text += "  validations:\n"
    for expression, message, message_expression in VALIDATIONS:
        text += (
            block("expression", expression, 4, item=True)
            + "      reason: Forbidden\n"
            + f"      message: {json.dumps(message)}\n"
            + block("messageExpression", message_expression, 6)
        )
    return text


def cel_string(value: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's), single-quoted for YAML."""
    return "'" + json.dumps(value).replace("'", "''") + "'"


MANIFESTS_HEADER = f"""\
# Legal hold, enforced by the API server: a Study whose spec.manifest.legalHold is true cannot be
# deleted, and only members of the group `{DEFAULT_GROUP}` may lift the hold (an update that sets it
# to false). Other updates, and the operator's status writes, are untouched (docs/install.md).
# Generated by `make legal-hold-policy` from hack/legal_hold_policy.py; do not edit by hand.
#
# To name another group, patch the policy's first variable in your kustomization, e.g.:
#
#   patches:
#     - target: {{kind: ValidatingAdmissionPolicy, name: {PLAIN_NAME}}}
#       patch: |-
#         - op: replace
#           path: /spec/variables/0/expression
#           value: '"acme:counsel"'
"""


def render_manifests() -> str:
    return (
        MANIFESTS_HEADER
        + "apiVersion: admissionregistration.k8s.io/v1\n"
        + "kind: ValidatingAdmissionPolicy\n"
        + "metadata:\n"
        + f"  name: {PLAIN_NAME}\n"
        + policy_spec(cel_string(DEFAULT_GROUP))
        + "---\n"
        + "apiVersion: admissionregistration.k8s.io/v1\n"
        + "kind: ValidatingAdmissionPolicyBinding\n"
        + "metadata:\n"
        + f"  name: {PLAIN_NAME}\n"
        + "spec:\n"
        + f"  policyName: {PLAIN_NAME}\n"
        + "  validationActions: [Deny]\n"
    )


# Cluster-scoped, so the name carries the release's namespace, as the ClusterRole's does; a
# policy's name must be a DNS subdomain, hence a dot rather than the ClusterRole's colon.
CHART_NAME = '{{ printf "%s.%s-legal-hold" .Release.Namespace (include "bentham-operator.fullname" .) }}'
CHART_LABELS = '  labels:\n    {{- include "bentham-operator.labels" . | nindent 4 }}\n'


def render_chart() -> str:
    return (
        "{{- /* Generated by `make legal-hold-policy` from hack/legal_hold_policy.py; do not edit by hand. */}}\n"
        "{{- if .Values.legalHold.enabled }}\n"
        "# Legal hold, enforced by the API server (values.yaml, legalHold).\n"
        "apiVersion: admissionregistration.k8s.io/v1\n"
        "kind: ValidatingAdmissionPolicy\n"
        "metadata:\n"
        f"  name: {CHART_NAME}\n"
        f"{CHART_LABELS}"
        + policy_spec("{{ .Values.legalHold.group | toJson | quote }}")
        + "---\n"
        + "apiVersion: admissionregistration.k8s.io/v1\n"
        + "kind: ValidatingAdmissionPolicyBinding\n"
        + "metadata:\n"
        + f"  name: {CHART_NAME}\n"
        + CHART_LABELS
        + "spec:\n"
        + f"  policyName: {CHART_NAME}\n"
        + "  validationActions: [Deny]\n"
        + "{{- end }}\n"
    )


RENDERERS = {"manifests": render_manifests, "chart": render_chart}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in RENDERERS:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(RENDERERS[argv[1]]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
