"""The one place that talks to Claude, through the official `anthropic` SDK, and turns its errors
into the ledger's: temporary ones propagate (retried with backoff), a 429 asks for its retry-after,
permanent ones (bad request, rejected key) dead-letter at once."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from sites.content import SITE_TOOL, SYSTEM_PROMPT, TOOL_NAME, LeadBrief, MalformedAnswer, SiteContent, Usage
from sites.content import mock_answer, validate_content
from workers.errors import PermanentError, RetryLater

if TYPE_CHECKING:
    import anthropic

# Retried by the ledger: too many requests (429, handled apart), request timeout, conflict, and 5xx
# (529 is the API's "overloaded"). Any other 4xx means this request will never succeed.
_TEMPORARY_4XX = {408, 409, 429}
# Without a retry-after header, a 429 waits this long at least.
DEFAULT_RETRY_AFTER_SECONDS = 30.0


class ClaudeUnavailable(Exception):
    """The API could not answer now (429 without a usable wait, 5xx, 529 overloaded): retried."""


class ClaudeRejected(PermanentError):
    """The API refused the request for good (400, 401, 403, 404 ...): retrying sends the same."""


@dataclass(frozen=True)
class Answer:
    content: SiteContent
    usage: Usage  # every request's, the malformed one included: it was paid for
    requests: int
    mock: bool


@functools.lru_cache(maxsize=4)
def _client(api_key: str, base_url: str, timeout: float) -> "anthropic.Anthropic":
    # Imported here: every worker imports every app's tasks, and only site-generation's calls Claude.
    import anthropic

    # max_retries=0: the ledger retries, with backoff, visibly; the SDK's own retries would hide a
    # 429 and multiply the calls behind one attempt.
    return anthropic.Anthropic(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0)


def client() -> "anthropic.Anthropic":
    return _client(settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL, settings.ANTHROPIC_TIMEOUT_SECONDS)


def _api_message(exc: Any) -> str:
    """The API's own error text ({"error": {"type", "message"}}), not the request (which holds no key
    anyway: the SDK sends it in a header that error texts never quote)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    kind, text = error.get("type", ""), error.get("message", "")
    return f"Claude API {exc.status_code}" + (f" {kind}" if kind else "") + (f": {text}" if text else "")


def _retry_after(exc: Any) -> float:
    raw = exc.response.headers.get("retry-after", "") if exc.response is not None else ""
    try:
        return max(0.0, float(raw))
    except ValueError:
        return DEFAULT_RETRY_AFTER_SECONDS


def _request(brief: LeadBrief, idempotency_key: str) -> tuple[Any, Usage]:
    """One API request: (the tool input, or None when the answer has no tool call; its usage)."""
    import anthropic

    try:
        message = client().messages.create(
            model=settings.ANTHROPIC_MODEL,
            max_tokens=settings.ANTHROPIC_MAX_TOKENS,
            system=SYSTEM_PROMPT,
            tools=[SITE_TOOL],
            tool_choice={"type": "tool", "name": TOOL_NAME},
            messages=[{"role": "user", "content": brief.prompt()}],
            # The API ignores a header it does not know; one that honours it answers a repeat once.
            extra_headers={"Idempotency-Key": idempotency_key},
        )
    except anthropic.APIStatusError as exc:
        if exc.status_code == 429:
            raise RetryLater(_retry_after(exc), _api_message(exc)) from None
        if exc.status_code >= 500 or exc.status_code in _TEMPORARY_4XX:
            raise ClaudeUnavailable(_api_message(exc)) from None  # temporary: retried with backoff
        raise ClaudeRejected(_api_message(exc)) from None
    tool_input = next((block.input for block in message.content
                       if getattr(block, "type", "") == "tool_use" and getattr(block, "name", "") == TOOL_NAME), None)
    return tool_input, Usage.from_api(message.usage)


def ask_for_site(brief: LeadBrief, idempotency_key: str) -> Answer:
    """The site's content for `brief`. A malformed answer is asked for once more (models slip); a
    second one is permanent. Timeouts and connection errors propagate as the SDK raises them."""
    if settings.MOCK_MODE:
        raw, usage = mock_answer(brief)
        return Answer(validate_content(raw), Usage.from_api(usage), requests=0, mock=True)
    usage = Usage()
    for request in (1, 2):
        raw, request_usage = _request(brief, idempotency_key if request == 1 else f"{idempotency_key}:again")
        usage += request_usage
        try:
            return Answer(validate_content(raw), usage, requests=request, mock=False)
        except MalformedAnswer as exc:
            if request == 2:
                raise MalformedAnswer(f"Claude's answer failed validation twice: {exc}") from None
    raise AssertionError("unreachable")
