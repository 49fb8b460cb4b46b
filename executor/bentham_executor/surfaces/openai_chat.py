"""openai-api and perplexity-api: Chat Completions through the official `openai` SDK.

Perplexity's API is OpenAI-compatible, so the same SDK serves it with Perplexity's base URL; its
extra response fields (citations, search results) are kept in the evidence as they came.
"""

from __future__ import annotations

from typing import Any

import openai

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


def ask(question: Question, connection: Connection) -> Answer:
    """Asks one chat completion; raises `SurfaceFailure` with the contract's code when there is no answer."""
    client = openai.OpenAI(**connection.stainless_client_options())
    messages: list[dict[str, str]] = []
    if question.context:
        messages.append({"role": "system", "content": question.context})
    messages.append({"role": "user", "content": question.text})
    request: dict[str, Any] = {"model": question.model, "messages": messages}
    if question.max_output_tokens is not None:
        request["max_tokens"] = question.max_output_tokens
    try:
        completion = client.chat.completions.create(**request)
    except openai.APIStatusError as error:
        raise _status_failure(error) from error
    except openai.APIError as error:
        raise transport_failure(error, connection) or SurfaceFailure(UNEXPECTED_RESPONSE, str(error)) from error
    return _answer(completion, request)


def _status_failure(error: openai.APIStatusError) -> SurfaceFailure:
    quota = error.code == "insufficient_quota" or (
        isinstance(error.body, dict) and error.body.get("code") == "insufficient_quota"
    )
    return failure_for_status(
        error.status_code,
        error_body_message(error.body, error.message),
        retry_after_s=retry_after_seconds(error.response.headers, now()),
        quota=quota,
    )


def _answer(completion: Any, request: dict[str, Any]) -> Answer:
    usage = completion.usage
    input_tokens = usage.prompt_tokens if usage else 0
    output_tokens = usage.completion_tokens if usage else 0
    choice = completion.choices[0] if completion.choices else None
    refusal = getattr(choice.message, "refusal", None) if choice else None
    finish_reason = choice.finish_reason if choice else None
    return Answer(
        text=(refusal or choice.message.content or "") if choice else "",
        model=completion.model or request["model"],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=finish_reason,
        refused=bool(refusal),
        blocked_by="the content filter (finish_reason content_filter)" if finish_reason == "content_filter" else None,
        request=request,
        response=completion.model_dump(mode="json"),
    )
