"""Evidence of an answer: one JSON document per attempt, stored on a volume or in S3, named by its SHA-256.

`evidenceLevel: full` stores the request, the whole response and the metadata; `metadata` the
metadata only; `none` nothing. A document's key holds the study's uid, so a study re-created under
its old name never overwrites the old one's evidence:

    <prefix>/<study>/<study uid>/<cell>/attempt-<n>.json

Retention (`retentionDays`, `preserveForever`, `legalHold`) is applied as S3 Object Lock when the
bucket has it enabled; a volume, or a bucket without Object Lock, cannot enforce it, and the
document says so (`retention.enforcedBy: none`), as docs/executor.md does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bentham.api.manifest import EvidenceLevel
from bentham.api.results import Evidence
from bentham_executor.attempt import Attempt, ConfigurationError, Retention

DIR_VARIABLE = "BENTHAM_EVIDENCE_DIR"
DEFAULT_DIR = "/evidence"
BUCKET_VARIABLE = "BENTHAM_EVIDENCE_S3_BUCKET"
PREFIX_VARIABLE = "BENTHAM_EVIDENCE_S3_PREFIX"
ENDPOINT_VARIABLE = "BENTHAM_EVIDENCE_S3_ENDPOINT"
LOCK_MODE_VARIABLE = "BENTHAM_EVIDENCE_S3_LOCK_MODE"
SCHEMA = "bentham.io/evidence/v1"


@dataclass(frozen=True)
class Document:
    """A serialised evidence document and its SHA-256 (of exactly these bytes)."""

    key: str
    body: bytes

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of the stored bytes."""
        return hashlib.sha256(self.body).hexdigest()


def evidence_key(attempt: Attempt) -> str:
    """Where an attempt's document goes, below the store's root: the study's uid keeps re-created studies apart."""
    return f"{attempt.study}/{attempt.study_uid}/{attempt.cell}/attempt-{attempt.attempt}.json"


def build_document(
    attempt: Attempt,
    *,
    metadata: Mapping[str, Any],
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    retention_enforced_by: str,
) -> Document | None:
    """The attempt's evidence document at its evidence level (None for `none`)."""
    if attempt.evidence_level is EvidenceLevel.NONE:
        return None
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "evidenceLevel": attempt.evidence_level.value,
        "study": attempt.study,
        "studyUid": attempt.study_uid,
        "cell": attempt.cell,
        "cellIndex": attempt.cell_index,
        "queryIndex": attempt.query_index,
        "surface": attempt.surface,
        "location": attempt.location,
        "attempt": attempt.attempt,
        "metadata": dict(metadata),
        "retention": {
            "retentionDays": attempt.retention.days,
            "preserveForever": attempt.retention.preserve_forever,
            "legalHold": attempt.retention.legal_hold,
            "enforcedBy": retention_enforced_by,
        },
    }
    if attempt.evidence_level is EvidenceLevel.FULL:
        document["request"] = dict(request)
        document["response"] = dict(response)
    body = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Document(evidence_key(attempt), body)


class EvidenceStore(Protocol):
    """Where documents go."""

    def retention_enforced_by(self, retention: Retention) -> str:
        """What will enforce `retention` for documents stored here ("none" when nothing can)."""
        ...

    def put(self, document: Document, retention: Retention, now: datetime) -> Evidence:
        """Stores the document; the reference to report. Raises `OSError` (or the client's error) on failure."""
        ...


class VolumeStore:
    """A mounted volume (a PersistentVolumeClaim): files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def retention_enforced_by(self, retention: Retention) -> str:
        """A plain file system enforces no retention: the volume's own policy must."""
        return "none"

    def put(self, document: Document, retention: Retention, now: datetime) -> Evidence:
        """Writes the document whole (a temporary file renamed), so a reader never sees half of it."""
        path = self.root / document.key
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".attempt-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(document.body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return Evidence(url=path.resolve().as_uri(), sha256=document.sha256)


class S3Store:
    """S3 or any S3-compatible object store, through boto3; Object Lock retention when the bucket has it."""

    def __init__(self, client: Any, bucket: str, prefix: str, lock_mode: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.lock_mode = lock_mode
        self._locking: bool | None = None

    def _bucket_locks(self) -> bool:
        if self._locking is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except self.client.exceptions.ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code != "ObjectLockConfigurationNotFoundError":
                    raise
                answer = {}
            self._locking = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        return self._locking

    def retention_enforced_by(self, retention: Retention) -> str:
        """S3 Object Lock when the bucket has it enabled, else nothing."""
        if not retention.requested:
            return "none"
        return "s3-object-lock" if self._bucket_locks() else "none"

    def put(self, document: Document, retention: Retention, now: datetime) -> Evidence:
        """Puts the object with its SHA-256 checksum (the store verifies it) and, where it can, its retention."""
        key = f"{self.prefix}/{document.key}" if self.prefix else document.key
        extra: dict[str, Any] = {}
        if retention.requested and self._bucket_locks():
            if retention.days is not None:
                extra["ObjectLockMode"] = self.lock_mode
                extra["ObjectLockRetainUntilDate"] = now + timedelta(days=retention.days)
            if retention.preserve_forever or retention.legal_hold:
                # Object Lock has no "forever": a legal hold keeps the object until someone lifts it.
                extra["ObjectLockLegalHoldStatus"] = "ON"
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=document.body,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",  # also what Object Lock puts require (x-amz-sdk-checksum-algorithm)
            ChecksumSHA256=base64.b64encode(bytes.fromhex(document.sha256)).decode("ascii"),
            **extra,
        )
        return Evidence(url=f"s3://{self.bucket}/{key}", sha256=document.sha256)


def store_from_env(env: Mapping[str, str], *, connect_timeout_s: float, read_timeout_s: float) -> EvidenceStore:
    """S3 when `BENTHAM_EVIDENCE_S3_BUCKET` is set, else the volume at `BENTHAM_EVIDENCE_DIR` (default /evidence)."""
    bucket = env.get(BUCKET_VARIABLE)
    if bucket:
        lock_mode = env.get(LOCK_MODE_VARIABLE, "GOVERNANCE")
        if lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ConfigurationError(f"{LOCK_MODE_VARIABLE} must be GOVERNANCE or COMPLIANCE, not {lock_mode!r}")
        return S3Store(
            s3_client(env, connect_timeout_s, read_timeout_s),
            bucket,
            env.get(PREFIX_VARIABLE, ""),
            lock_mode,
        )
    root = Path(env.get(DIR_VARIABLE) or DEFAULT_DIR)
    if not root.is_dir() or not os.access(root, os.W_OK):
        raise ConfigurationError(
            f"{DIR_VARIABLE}: {root} is not a writable folder: mount the evidence volume there, "
            f"or set {BUCKET_VARIABLE} to store evidence in S3"
        )
    return VolumeStore(root)


def s3_client(env: Mapping[str, str], connect_timeout_s: float, read_timeout_s: float) -> Any:
    """A boto3 S3 client with bounded calls.

    The endpoint, region and keys come from `env` when it has them (`BENTHAM_EVIDENCE_S3_ENDPOINT`,
    `AWS_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, from a Secret), else from boto3's
    usual chain (a web identity token, an instance profile, ...).
    """
    import boto3  # only S3 mode needs boto3
    from botocore.config import Config

    endpoint = env.get(ENDPOINT_VARIABLE) or None
    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"max_attempts": 3, "mode": "standard"},
        # S3-compatible stores (MinIO, Ceph, ...) name buckets in the path, not the host.
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
        config=config,
    )
