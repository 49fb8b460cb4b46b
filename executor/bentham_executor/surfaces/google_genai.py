"""google-ai-api: the Gemini API's generateContent through the official `google-genai` SDK."""

from __future__ import annotations

from typing import Any

from google import genai
from google.genai import errors, types

from bentham_executor.answers import (
    UNEXPECTED_RESPONSE,
    Answer,
    Question,
    SurfaceFailure,
    failure_for_status,
    retry_after_seconds,
)
from bentham_executor.surfaces.connection import Connection, now, transport_failure

# The finish reasons that mean Google's filters withheld the answer, not that the model ended it.
_FILTERED = frozenset(
    {
        types.FinishReason.SAFETY,
        types.FinishReason.BLOCKLIST,
        types.FinishReason.PROHIBITED_CONTENT,
        types.FinishReason.SPII,
        types.FinishReason.RECITATION,
        types.FinishReason.MODEL_ARMOR,
        types.FinishReason.IMAGE_SAFETY,
        types.FinishReason.IMAGE_PROHIBITED_CONTENT,
    }
)


def ask(question: Question, connection: Connection) -> Answer:
    """Asks one generateContent; raises `SurfaceFailure` with the contract's code when there is no answer."""
    client = genai.Client(
        api_key=connection.api_key,
        http_options=types.HttpOptions(
            base_url=connection.base_url,
            timeout=max(1, int(connection.timeout_s * 1000)),
            httpx_client=connection.http_client,
            retry_options=types.HttpRetryOptions(attempts=1),  # the executor retries (run.py)
        ),
    )
    config: dict[str, Any] = {}
    if question.context:
        config["system_instruction"] = question.context
    if question.max_output_tokens is not None:
        config["max_output_tokens"] = question.max_output_tokens
    request: dict[str, Any] = {"model": question.model, "contents": question.text, "config": config}
    try:
        response = client.models.generate_content(
            model=question.model,
            contents=question.text,
            config=types.GenerateContentConfig(**config) if config else None,
        )
    except errors.APIError as error:
        headers = error.response.headers if error.response is not None else None
        raise failure_for_status(
            error.code, error.message or str(error), retry_after_s=retry_after_seconds(headers, now())
        ) from error
    except Exception as error:  # the SDK lets httpx's own errors through
        failure = transport_failure(error, connection)
        if failure is None:
            raise SurfaceFailure(UNEXPECTED_RESPONSE, f"{type(error).__name__}: {error}") from error
        raise failure from error
    return _answer(response, question, request)


def _answer(response: types.GenerateContentResponse, question: Question, request: dict[str, Any]) -> Answer:
    usage = response.usage_metadata
    input_tokens = (usage.prompt_token_count or 0) if usage else 0
    # Thinking tokens are billed as output.
    output_tokens = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
    candidate = response.candidates[0] if response.candidates else None
    finish = candidate.finish_reason if candidate else None
    blocked_by: str | None = None
    if response.prompt_feedback is not None and response.prompt_feedback.block_reason is not None:
        blocked_by = f"the prompt filter (block_reason {response.prompt_feedback.block_reason.value})"
    elif finish in _FILTERED and finish is not None:
        blocked_by = f"the content filter (finish_reason {finish.value})"
    parts = candidate.content.parts if candidate and candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    return Answer(
        text=text,
        model=response.model_version or question.model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=finish.value if finish is not None else None,
        blocked_by=blocked_by,
        request=request,
        response=response.model_dump(mode="json", exclude_none=True, exclude={"sdk_http_response"}),
    )
