"""How each API surface's service speaks on the wire: the bodies a local server answers its SDK with.

The shapes are the services' documented JSON (chat completions, messages, generateContent), so the
real SDKs parse them as they would the real services' answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.executor.servers import Reply

PROMPT_TOKENS = 12
ANSWER_TOKENS = 300


def _openai_answer(text: str, *, finish: str = "stop", refusal: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "served-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None if refusal else text, "refusal": refusal},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": ANSWER_TOKENS,
            "total_tokens": PROMPT_TOKENS + ANSWER_TOKENS,
        },
        **extra,
    }


def _openai_error(status: int, message: str) -> dict[str, Any]:
    kinds = {401: "invalid_api_key", 403: "permission_denied", 429: "rate_limit_exceeded", 500: "server_error"}
    return {"error": {"message": message, "type": "api_error", "param": None, "code": kinds.get(status)}}


def _anthropic_answer(text: str, *, stop: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "served-model",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": ANSWER_TOKENS},
    }


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kinds = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error", 500: "api_error"}
    return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}


def _google_answer(text: str, *, finish: str = "STOP") -> dict[str, Any]:
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if text:
        candidate["content"] = {"parts": [{"text": text}], "role": "model"}
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": ANSWER_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + ANSWER_TOKENS,
        },
        "modelVersion": "served-model",
    }


def _google_error(status: int, message: str) -> dict[str, Any]:
    kinds = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
    return {"error": {"code": status, "message": message, "status": kinds.get(status, "UNKNOWN")}}


@dataclass(frozen=True)
class Dialect:
    """One surface's service: where its SDK posts, and what it answers."""

    surface: str
    key_variable: str
    base_url_variable: str
    base_path: str
    """What the SDK's base URL adds to the server's root."""
    request_path: Callable[[str], str]
    """The path a question to `model` is posted to."""
    answer: Callable[[str], dict[str, Any]]
    refusal: Reply | None
    """The model declines: an answer, but not actual content (None: the service has no refusal signal)."""
    blocked: Reply | None
    """The service's content filter withholds the answer (None: the service has no such answer)."""
    error: Callable[[int, str], dict[str, Any]]

    def base_url(self, root: str) -> str:
        """The SDK's base URL on a local server at `root`."""
        return root + self.base_path

    def good(self, text: str = "Brooks Adrenaline and ASICS Kayano are the usual picks.") -> Reply:
        """A good answer."""
        return Reply(body=self.answer(text))

    def failing(self, status: int, message: str = "scripted failure", **headers: str) -> Reply:
        """An HTTP error in the service's error format."""
        return Reply(status=status, body=self.error(status, message), headers=dict(headers))


OPENAI = Dialect(
    surface="openai-api",
    key_variable="OPENAI_API_KEY",
    base_url_variable="OPENAI_BASE_URL",
    base_path="/v1",
    request_path=lambda model: "/v1/chat/completions",
    answer=_openai_answer,
    refusal=Reply(body=_openai_answer("", refusal="I'm sorry, I can't help with that.")),
    blocked=Reply(body=_openai_answer("", finish="content_filter")),
    error=_openai_error,
)
PERPLEXITY = Dialect(
    surface="perplexity-api",
    key_variable="PERPLEXITY_API_KEY",
    base_url_variable="PERPLEXITY_BASE_URL",
    base_path="",
    request_path=lambda model: "/chat/completions",
    answer=lambda text: _openai_answer(text, citations=["https://example.org/shoes"]),
    refusal=Reply(body=_openai_answer("", refusal="I can't help with that.")),
    blocked=Reply(body=_openai_answer("", finish="content_filter")),
    error=_openai_error,
)
ANTHROPIC = Dialect(
    surface="anthropic-api",
    key_variable="ANTHROPIC_API_KEY",
    base_url_variable="ANTHROPIC_BASE_URL",
    base_path="",
    request_path=lambda model: "/v1/messages",
    answer=_anthropic_answer,
    refusal=Reply(body=_anthropic_answer("", stop="refusal")),
    blocked=None,  # Anthropic reports its classifiers' intervention as a refusal stop, above
    error=_anthropic_error,
)
GOOGLE = Dialect(
    surface="google-ai-api",
    key_variable="GEMINI_API_KEY",
    base_url_variable="GOOGLE_GEMINI_BASE_URL",
    base_path="",
    request_path=lambda model: f"/v1/models/{model}:generateContent",
    answer=_google_answer,
    refusal=None,  # Gemini's safety stops are its content filter, below
    blocked=Reply(body=_google_answer("", finish="SAFETY")),
    error=_google_error,
)
DIALECTS = (OPENAI, ANTHROPIC, GOOGLE, PERPLEXITY)
