"""The README's install commands are docs/install.md's, which tests/e2e/test_install_docs.py runs word for word."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def sh_blocks(markdown: Path, heading: str) -> list[str]:
    section = markdown.read_text().split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)


def test_the_readmes_install_commands_are_the_tested_sections_word_for_word() -> None:
    readme = sh_blocks(REPO / "README.md", "## Deploying to a real cluster")
    tested = sh_blocks(REPO / "docs" / "install.md", "## Install with Helm on the local control plane")
    assert readme, "the README shows its install commands"
    for block in readme:
        assert block in tested, f"README block not in docs/install.md's tested section:\n{block}"


def test_the_local_values_and_study_agree_on_the_real_node() -> None:
    """The study asks for exactly the node selector and toleration the values' executor policy allows."""
    values = yaml.safe_load((REPO / "examples" / "local" / "values.yaml").read_text())
    study = yaml.safe_load((REPO / "examples" / "local" / "stand-in-study.yaml").read_text())
    executor, policy = study["spec"]["executor"], values["executorPolicy"]["default"]
    assert set(executor["nodeSelector"]) <= set(policy["nodeSelectorKeys"])
    assert all(toleration in policy["tolerations"] for toleration in executor["tolerations"])
    assert executor["image"].startswith("localhost/bentham/") and executor["imagePullPolicy"] == "Never"
    assert values["watchNamespaces"] == ["demo"], "the docs create and use the namespace demo"
