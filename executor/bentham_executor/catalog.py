"""Which surfaces this executor serves, through which SDK, with which key and endpoint.

API keys and base URLs come from the container's environment (keys from a Secret through
`spec.executor.env` `valueFrom`), never from the manifest. A base URL variable points an SDK at
another endpoint (a gateway, a regional endpoint, or a local server in tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from bentham_executor.answers import Answer, Question
from bentham_executor.surfaces.connection import Connection

Ask = Callable[[Question, Connection], Answer]

EXECUTOR_NAME = "bentham-executor (the reference API executor)"


@dataclass(frozen=True)
class ApiSurface:
    """An API surface: the SDK module that asks it, its key's variable, its base URL's variable and default."""

    surface: str
    sdk_module: str
    key_variable: str
    base_url_variable: str
    default_base_url: str | None
    """None: the SDK's own default endpoint."""

    def ask_function(self) -> Ask:
        """The module's `ask`, imported only when asked: a web surface never loads an SDK."""
        module = importlib.import_module(f"bentham_executor.surfaces.{self.sdk_module}")
        ask: Ask = module.ask
        return ask


API_SURFACES: dict[str, ApiSurface] = {
    s.surface: s
    for s in (
        ApiSurface("openai-api", "openai_chat", "OPENAI_API_KEY", "OPENAI_BASE_URL", None),
        ApiSurface("anthropic-api", "anthropic_messages", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", None),
        ApiSurface("google-ai-api", "google_genai", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", None),
        ApiSurface(
            "perplexity-api", "openai_chat", "PERPLEXITY_API_KEY", "PERPLEXITY_BASE_URL", "https://api.perplexity.ai"
        ),
    )
}

# Surfaces with no API: they need a real browser session (and a residential proxy) per location.
BROWSER_EXECUTOR = (
    "a browser executor (a headless browser driving the surface's web front end through the location's proxy)"
)


def not_served_reason(surface: str) -> str:
    """Why this executor does not ask `surface`, and which executor does."""
    return (
        f"{surface} is not an API surface: {EXECUTOR_NAME} asks only {', '.join(API_SURFACES)}; "
        f"{surface} needs {BROWSER_EXECUTOR}. Run those surfaces in a study whose spec.executor.image is one"
    )
