"""anthropic-api: the Messages API through the official `anthropic` SDK."""

from __future__ import annotations

from typing import Any

import anthropic

from bentham_executor.answers import (
    UNEXPECTED_RESPONSE,
    Answer,
    Question,
    SurfaceFailure,
    error_body_message,
    failure_for_status,
    retry_after_seconds,
)
from bentham_executor.surfaces.connection import Connection, now, transport_failure

# The Messages API needs a ceiling on the answer; options.maxOutputTokens overrides it.
DEFAULT_MAX_TOKENS = 1024


def ask(question: Question, connection: Connection) -> Answer:
    """Asks one message; raises `SurfaceFailure` with the contract's code when there is no answer."""
    client = anthropic.Anthropic(**connection.stainless_client_options())
    request: dict[str, Any] = {
        "model": question.model,
        "max_tokens": question.max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": question.text}],
    }
    if question.context:
        request["system"] = question.context
    try:
        message = client.messages.create(**request)
    except anthropic.APIStatusError as error:
        raise failure_for_status(
            error.status_code,
            error_body_message(error.body, error.message),
            retry_after_s=retry_after_seconds(error.response.headers, now()),
        ) from error
    except anthropic.APIError as error:
        raise transport_failure(error, connection) or SurfaceFailure(UNEXPECTED_RESPONSE, str(error)) from error
    text = "".join(block.text for block in message.content if block.type == "text")
    return Answer(
        text=text,
        model=message.model or question.model,
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
        finish_reason=message.stop_reason,
        # Claude's safety classifiers stopped it: it declined, which is an answer but not content.
        refused=message.stop_reason == "refusal",
        request=request,
        response=message.model_dump(mode="json"),
    )
