"""One version, `bentham.__version__`: what `--version` prints, what the metrics label, what pip installed."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bentham import __version__
from bentham.__main__ import main
from bentham.controller.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
# Nothing here may need a cluster: point the client at none.
NO_CLUSTER = {**os.environ, "KUBECONFIG": str(REPO / "no-such-kubeconfig")}


def test_version_prints_the_package_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"bentham-operator {__version__}\n"


def test_the_console_script_prints_the_version_without_a_cluster() -> None:
    script = Path(sys.executable).with_name("bentham-operator")
    assert script.exists(), "the package is not installed in this environment: run `make install`"
    ran = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=NO_CLUSTER, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"bentham-operator {__version__}\n"


def test_python_m_bentham_prints_the_version_too() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "bentham", "--version"], capture_output=True, text=True, env=NO_CLUSTER, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"bentham-operator {__version__}\n"


def test_the_installed_distribution_has_the_package_version() -> None:
    # pyproject's version is dynamic, read from bentham.__version__.
    assert importlib.metadata.version("bentham-study-operator") == __version__


def test_the_chart_installs_this_version_by_default() -> None:
    chart = yaml.safe_load((REPO / "charts" / "bentham-operator" / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


def test_build_info_is_1_labelled_with_the_version_and_python() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    labels = {"version": __version__, "python": platform.python_version()}
    assert registry.get_sample_value("bentham_build_info", labels) == 1
    scraped = text_string_to_metric_families(generate_latest(registry).decode())
    (family,) = [f for f in scraped if f.name == "bentham_build_info"]
    assert family.type == "gauge"
    assert [(sample.labels, sample.value) for sample in family.samples] == [(labels, 1)]
