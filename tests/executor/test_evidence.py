"""Evidence per evidenceLevel, on a volume (a temporary folder) and in S3 (moto's S3 server, over HTTP)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3

from bentham_executor.evidence import SCHEMA
from bentham_executor.run import EXIT_MISCONFIGURED, run_attempt
from tests.executor.dialects import OPENAI
from tests.executor.helpers import env_for
from tests.executor.servers import WireService, free_port

S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def s3_env(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    settings = {"BENTHAM_EVIDENCE_S3_BUCKET": bucket, "BENTHAM_EVIDENCE_S3_ENDPOINT": endpoint, **S3_KEYS}
    settings["BENTHAM_EVIDENCE_S3_PREFIX"] = "evidence"
    return [{"name": name, "value": value} for name, value in settings.items()]


def file_of(url: str) -> Path:
    assert url.startswith("file://")
    return Path(unquote(urlsplit(url).path))


def test_full_evidence_on_a_volume_holds_request_response_and_metadata(service: WireService, tmp_path: Path) -> None:
    service.script(OPENAI.good("An answer."))

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path))

    assert outcome.result.evidence is not None
    [reference] = outcome.result.evidence
    assert reference.url is not None
    path = file_of(reference.url)
    assert (
        path == tmp_path / "shoes" / "2f1c6a4e-0000-4000-8000-000000000001" / "q0-openai-api-us-nyc" / "attempt-1.json"
    )
    body = path.read_bytes()
    assert reference.sha256 == hashlib.sha256(body).hexdigest()
    document = json.loads(body)
    assert document["schema"] == SCHEMA and document["evidenceLevel"] == "full"
    assert document["request"]["messages"][-1]["content"] == "Question number 0?"
    assert document["response"]["choices"][0]["message"]["content"] == "An answer."
    metadata = document["metadata"]
    assert metadata["responseLength"] == len("An answer.") and metadata["costUsd"] == outcome.result.costUsd
    assert metadata["egress"] == {"location": "us-nyc", "proxy": None}
    assert document["retention"]["enforcedBy"] == "none"
    assert "sk-test" not in body.decode(), "no credentials in evidence"
    assert [p.name for p in path.parent.iterdir()] == ["attempt-1.json"], "no temporary file left behind"


def test_metadata_evidence_holds_no_request_or_response(service: WireService, tmp_path: Path) -> None:
    service.script(OPENAI.good("An answer."))

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path, evidence_level="metadata"))

    assert outcome.result.evidence is not None and outcome.result.evidence[0].url is not None
    document = json.loads(file_of(outcome.result.evidence[0].url).read_bytes())
    assert document["evidenceLevel"] == "metadata" and "metadata" in document
    assert "request" not in document and "response" not in document


def test_no_evidence_stores_nothing_and_needs_no_store(service: WireService, tmp_path: Path) -> None:
    service.script(OPENAI.good("An answer."))
    env = env_for(OPENAI, service.url, None, evidence_level="none")

    outcome = run_attempt(env)

    assert outcome.result.success and outcome.result.evidence is None
    assert "BENTHAM_EVIDENCE_DIR" not in env


def test_a_study_created_again_under_its_name_never_overwrites_the_old_ones_evidence(
    service: WireService, tmp_path: Path
) -> None:
    service.script(OPENAI.good("first"))
    old = run_attempt(env_for(OPENAI, service.url, tmp_path))
    service.script(OPENAI.good("second, much longer"))
    new = run_attempt(
        env_for(OPENAI, service.url, tmp_path) | {"BENTHAM_STUDY_UID": "9d0e7b1a-0000-4000-8000-000000000002"}
    )

    assert old.result.evidence and new.result.evidence
    old_url, new_url = old.result.evidence[0].url, new.result.evidence[0].url
    assert old_url and new_url and old_url != new_url
    assert hashlib.sha256(file_of(old_url).read_bytes()).hexdigest() == old.result.evidence[0].sha256


def test_an_evidence_folder_that_is_not_mounted_stops_the_attempt_before_it_asks(
    service: WireService, tmp_path: Path
) -> None:
    service.script(OPENAI.good())

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path / "not-mounted"))

    error = outcome.result.error
    assert error is not None and error.code == "EXECUTOR_MISCONFIGURED" and not error.retryable
    assert "BENTHAM_EVIDENCE_DIR" in error.message
    assert outcome.exit_code == EXIT_MISCONFIGURED
    assert service.received == [], "nothing is spent on an answer that could not be kept"


def test_full_evidence_in_s3_is_the_object_whose_sha256_is_reported(service: WireService, s3_endpoint: str) -> None:
    s3(s3_endpoint).create_bucket(Bucket="plain")
    service.script(OPENAI.good("An answer."))

    outcome = run_attempt(env_for(OPENAI, service.url, None, env=s3_env(s3_endpoint, "plain")))

    assert outcome.result.success, outcome.result.error
    assert outcome.result.evidence is not None
    [reference] = outcome.result.evidence
    key = "evidence/shoes/2f1c6a4e-0000-4000-8000-000000000001/q0-openai-api-us-nyc/attempt-1.json"
    assert reference.url == f"s3://plain/{key}"
    stored = s3(s3_endpoint).get_object(Bucket="plain", Key=key)["Body"].read()
    assert reference.sha256 == hashlib.sha256(stored).hexdigest()
    document = json.loads(stored)
    assert document["response"]["choices"][0]["message"]["content"] == "An answer."


def test_retention_becomes_object_lock_where_the_bucket_has_it(service: WireService, s3_endpoint: str) -> None:
    s3(s3_endpoint).create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    service.script(OPENAI.good("An answer."))
    before = datetime.now(UTC)

    outcome = run_attempt(
        env_for(
            OPENAI,
            service.url,
            None,
            env=s3_env(s3_endpoint, "locked"),
            retentionDays=30,
            legalHold=True,
        )
    )

    assert outcome.result.evidence is not None and outcome.result.evidence[0].url is not None
    key = outcome.result.evidence[0].url.removeprefix("s3://locked/")
    # HEAD reports an object's lock as S3 does (moto's GetObjectRetention answers 500 in this version).
    head = s3(s3_endpoint).head_object(Bucket="locked", Key=key)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert before + timedelta(days=30) - timedelta(seconds=2) <= until <= datetime.now(UTC) + timedelta(days=30)
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    document = json.loads(s3(s3_endpoint).get_object(Bucket="locked", Key=key)["Body"].read())
    assert document["retention"] == {
        "retentionDays": 30,
        "preserveForever": False,
        "legalHold": True,
        "enforcedBy": "s3-object-lock",
    }


def test_retention_on_a_bucket_without_object_lock_is_stored_and_said_to_be_unenforced(
    service: WireService, s3_endpoint: str
) -> None:
    s3(s3_endpoint).create_bucket(Bucket="unlocked")
    service.script(OPENAI.good("An answer."))

    outcome = run_attempt(env_for(OPENAI, service.url, None, env=s3_env(s3_endpoint, "unlocked"), retentionDays=7))

    assert outcome.result.success and outcome.result.evidence is not None
    url = outcome.result.evidence[0].url
    assert url is not None
    document = json.loads(
        s3(s3_endpoint).get_object(Bucket="unlocked", Key=url.removeprefix("s3://unlocked/"))["Body"].read()
    )
    assert document["retention"]["retentionDays"] == 7 and document["retention"]["enforcedBy"] == "none"


def test_an_answer_whose_evidence_cannot_be_stored_is_retried_and_still_costs(service: WireService) -> None:
    service.script(OPENAI.good("An answer."))
    nowhere = f"http://127.0.0.1:{free_port()}"

    outcome = run_attempt(env_for(OPENAI, service.url, None, env=s3_env(nowhere, "gone")))

    error = outcome.result.error
    assert error is not None and error.code == "EVIDENCE_NOT_STORED" and error.retryable
    assert outcome.result.costUsd is not None and outcome.result.costUsd > 0
