"""The namespaces the operator asks about at start are those kopf watches as exact names."""

from __future__ import annotations

from kopf._cogs.structs.references import select_specific_namespaces

from bentham.controller.namespace_access import is_pattern

GIVEN = ["tenant-a", "tenant-*", "team-?", "!kube-*", "a,b", "x-[ab]", "default", "kube-system"]


def test_only_names_kopf_takes_literally_are_checked_the_rest_pass_through_as_patterns() -> None:
    exact = {namespace for namespace in GIVEN if not is_pattern(namespace)}

    assert exact == {"tenant-a", "default", "kube-system"}
    assert exact <= set(select_specific_namespaces(GIVEN))  # never one kopf would match as a pattern
