"""The operator's settings, read once from the environment (the Deployment's env or `make run`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bentham.core.executor_policy import ExecutorPolicy, ExecutorPolicyInvalid, executor_policy_of
from bentham.core.pricing import PricingInvalid, PricingTable, builtin_pricing, pricing_with_overrides
from bentham.core.webhook_policy import ALLOWED_CIDRS_SETTING, IPNetwork, allowed_networks


@dataclass(frozen=True)
class OperatorConfig:
    batch_window_s: float = 0.3
    """How long a woken study worker waits for the rest of a burst before deciding once."""
    status_interval_s: float = 5.0
    """How long a study's status that only moves counts may wait to be written (core.pacing)."""
    watch_timeout_s: int = 300
    """Server-side timeout of each watch request; the watch then resumes from where it was."""
    api_timeout_s: float = 15.0
    """Read timeout of every API request (connect: 5 s at most); kopf's own requests get 4 times as long in all."""
    stall_after_s: float = 40.0
    """/healthz fails once a worker is inside one pass, or the API server silent, this long (controller/liveness)."""
    metrics_port: int = 0
    """Port of the Prometheus endpoint (/metrics) on all addresses; 0 turns it off."""
    pricing_file: str | None = None
    """A pricing table laid over the built-in one for cost estimates (docs/cost.md); None: the built-in one."""
    executor_policy_file: str | None = None
    """What studies may ask of their pods, per namespace (docs/executor.md); None: nothing beyond the defaults."""
    webhook_allowed_cidrs: str = ""
    """CIDRs (comma-separated) that webhooks may reach beyond public addresses, e.g. an in-cluster receiver's."""

    @classmethod
    def from_environment(cls) -> OperatorConfig:
        return cls(
            batch_window_s=float(os.environ.get("BENTHAM_BATCH_WINDOW_SECONDS", cls.batch_window_s)),
            status_interval_s=float(os.environ.get("BENTHAM_STATUS_INTERVAL_SECONDS", cls.status_interval_s)),
            watch_timeout_s=int(os.environ.get("BENTHAM_WATCH_TIMEOUT_SECONDS", cls.watch_timeout_s)),
            api_timeout_s=float(os.environ.get("BENTHAM_API_TIMEOUT_SECONDS", cls.api_timeout_s)),
            stall_after_s=float(os.environ.get("BENTHAM_STALL_SECONDS", cls.stall_after_s)),
            metrics_port=int(os.environ.get("BENTHAM_METRICS_PORT", cls.metrics_port)),
            pricing_file=os.environ.get("BENTHAM_PRICING_FILE") or None,
            executor_policy_file=os.environ.get("BENTHAM_EXECUTOR_POLICY_FILE") or None,
            webhook_allowed_cidrs=os.environ.get(ALLOWED_CIDRS_SETTING, ""),
        )

    def webhook_allowed_networks(self) -> tuple[IPNetwork, ...]:
        """The networks webhooks may reach though not public; AllowedCidrsInvalid names a bad entry."""
        return allowed_networks(self.webhook_allowed_cidrs)

    def pricing(self) -> PricingTable:
        """The pricing table: the built-in one, with `pricing_file` laid over it when set.

        Read once, at start: a file that cannot be read or used stops the operator with a message
        naming it and the field, rather than estimating every study from a table nobody meant.
        """
        if self.pricing_file is None:
            return builtin_pricing()
        try:
            text = Path(self.pricing_file).read_text(encoding="utf-8")
        except OSError as error:
            raise PricingInvalid(f"BENTHAM_PRICING_FILE {self.pricing_file} cannot be read: {error}") from error
        return pricing_with_overrides(text, f"BENTHAM_PRICING_FILE {self.pricing_file}")

    def executor_policy(self) -> ExecutorPolicy:
        """The executor policy: `executor_policy_file` when set, else the default (nothing allowed beyond the defaults).

        Read once, at start, like the pricing table: a file that cannot be read or used stops the
        operator rather than running every study under a policy nobody meant.
        """
        if self.executor_policy_file is None:
            return ExecutorPolicy()
        source = f"BENTHAM_EXECUTOR_POLICY_FILE {self.executor_policy_file}"
        try:
            text = Path(self.executor_policy_file).read_text(encoding="utf-8")
        except OSError as error:
            raise ExecutorPolicyInvalid(f"{source} cannot be read: {error}") from error
        return executor_policy_of(text, source)
