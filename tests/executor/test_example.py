"""examples/api-study.yaml, run by the reference executor against local services standing in for the real ones."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import boto3
import yaml

from bentham_executor.run import run_attempt
from tests.executor.contract import attempt_env
from tests.executor.dialects import ANTHROPIC, OPENAI
from tests.executor.servers import WireService

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "api-study.yaml"


def test_the_api_example_answers_each_surface_with_keys_from_its_secrets(
    service: WireService, s3_endpoint: str
) -> None:
    study: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = study["spec"]
    env = spec["executor"]["env"]
    # Point the example at the local stand-ins: the SDKs' base URLs and the S3 endpoint.
    for entry in env:
        if entry["name"] == "BENTHAM_EVIDENCE_S3_ENDPOINT":
            entry["value"] = s3_endpoint
    env += [
        {"name": OPENAI.base_url_variable, "value": OPENAI.base_url(service.url)},
        {"name": ANTHROPIC.base_url_variable, "value": ANTHROPIC.base_url(service.url)},
    ]
    secrets = {
        "answer-engine-keys": {"openai-api": "sk-openai", "anthropic-api": "sk-anthropic"},
        "evidence-store": {"access-key-id": "testing", "secret-access-key": "testing"},
        "egress-proxies": {"proxies.yaml": ""},  # optional in the example; present but empty here
    }
    bucket = next(e["value"] for e in env if e["name"] == "BENTHAM_EVIDENCE_S3_BUCKET")
    store = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    store.create_bucket(Bucket=bucket)

    # Cell 0 is q0 x openai-api x us-nyc, cell 2 is q0 x anthropic-api x us-nyc.
    for cell, dialect in ((0, OPENAI), (2, ANTHROPIC)):
        service.script(dialect.good("An answer."))
        outcome = run_attempt(attempt_env(spec, study_name="api-study", cell_index=cell, secrets=secrets))

        assert outcome.result.success, outcome.result.error
        assert outcome.result.surface == dialect.surface
        assert outcome.result.evidence and outcome.result.evidence[0].url
        key = outcome.result.evidence[0].url.removeprefix(f"s3://{bucket}/")
        stored = store.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == outcome.result.evidence[0].sha256
        sent = " ".join(service.received[-1].headers.values())
        assert secrets["answer-engine-keys"][dialect.surface] in sent
