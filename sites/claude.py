"""The one place that talks to Claude, through the official `anthropic` SDK: every answer is recorded
as paid the moment it arrives (AiRequest), the budget is checked before every request, and the API's
errors become the ledger's: temporary ones propagate (retried with backoff), a 429 asks for its
retry-after, permanent ones (bad request, rejected key) dead-letter at once."""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection

from sites import budget
from sites.content import SITE_TOOL, SYSTEM_PROMPT, TOOL_NAME, LeadBrief, MalformedAnswer, SiteContent, Usage
from sites.content import mock_answer, validate_content
from sites.models import AiRequest
from sites.services import cost_of, usd
from workers.errors import PermanentError, RetryLater

if TYPE_CHECKING:
    import anthropic

# Retried by the ledger: too many requests (429, handled apart), request timeout, conflict, and 5xx
# (529 is the API's "overloaded"). Any other 4xx means this request will never succeed.
_TEMPORARY_4XX = {408, 409, 429}
# Without a retry-after header, a 429 waits this long at least.
DEFAULT_RETRY_AFTER_SECONDS = 30.0
# Between tries to record a paid answer while PostgreSQL is away.
RECORD_RETRY_PAUSE_SECONDS = 0.25

logger = logging.getLogger(__name__)


class ClaudeUnavailable(Exception):
    """The API could not answer now (429 without a usable wait, 5xx, 529 overloaded): retried."""


class ClaudeRejected(PermanentError):
    """The API refused the request for good (400, 401, 403, 404 ...): retrying sends the same."""


@dataclass(frozen=True)
class Payer:
    """Whom a request is paid for: what the record of every paid request names."""

    job_id: str
    fence: int  # the attempt's dispatch token
    lead_id: int
    idempotency_key: str  # the job's, the same on every attempt


@dataclass(frozen=True)
class Reply:
    """One answered request, as the API billed it."""

    tool_input: Any  # the publish_site call's input, or None when the answer has none
    refused: bool  # stop_reason "refusal": the model declined
    usage: Usage
    request_id: str
    message_id: str
    duration_ms: int


@dataclass(frozen=True)
class Answer:
    content: SiteContent
    requests: tuple[int, ...]  # the AiRequest rows behind it: this attempt's, or the one it reused
    usage: Usage  # every one of those requests', the malformed ones included: they were paid for
    cost: Decimal
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


def _request(brief: LeadBrief, idempotency_key: str) -> Reply:
    """One API request and what it was billed. Errors carry no usage: the API bills none for them."""
    import anthropic

    started = time.monotonic()
    try:
        message = client().messages.create(
            model=settings.ANTHROPIC_MODEL,
            max_tokens=settings.ANTHROPIC_MAX_TOKENS,
            system=SYSTEM_PROMPT,
            tools=[SITE_TOOL],
            tool_choice={"type": "tool", "name": TOOL_NAME},
            messages=[{"role": "user", "content": brief.prompt()}],
            # The Messages API ignores this header (it has no idempotency keys): what keeps an answer
            # from being bought twice is its record (AiRequest), reused by the job's next attempt.
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
    return Reply(tool_input=tool_input, refused=getattr(message, "stop_reason", None) == "refusal",
                 usage=Usage.from_api(message.usage), request_id=getattr(message, "_request_id", None) or "",
                 message_id=str(getattr(message, "id", "") or ""),
                 duration_ms=int((time.monotonic() - started) * 1000))


def _mock_request(brief: LeadBrief) -> Reply:
    raw, usage = mock_answer(brief)
    return Reply(tool_input=raw, refused=False, usage=Usage.from_api(usage), request_id="", message_id="",
                 duration_ms=0)


def _judge(reply: Reply) -> tuple[SiteContent | None, str, str]:
    """(the content or None, the AiRequest outcome, why it is not valid)."""
    if reply.refused:
        return None, AiRequest.Outcome.REFUSED, "the model declined to answer (stop_reason refusal)"
    if reply.tool_input is None:
        return None, AiRequest.Outcome.MALFORMED, f"the answer has no {TOOL_NAME} tool call"
    try:
        return validate_content(reply.tool_input), AiRequest.Outcome.VALID, ""
    except MalformedAnswer as exc:
        return None, AiRequest.Outcome.MALFORMED, str(exc)


def ask_for_site(brief: LeadBrief, payer: Payer) -> Answer:
    """The site's content for `brief`. Every answer is on the books (AiRequest) the moment it arrives,
    before anything else can fail. The budget is checked before every request, the second one
    included: over it, no request is made and the job waits (workers.errors.Postpone). A malformed
    answer is asked for once more (models slip); a second one is permanent. Timeouts and connection
    errors propagate as the SDK raises them."""
    mock = settings.MOCK_MODE
    rows: list[AiRequest] = []
    why = ""
    for request in range(1, settings.AI_REQUESTS_PER_ATTEMPT + 1):  # the settings' lease check counts them
        if mock:
            reply = _mock_request(brief)
        else:
            budget.check_before_request()
            reply = _request(brief, payer.idempotency_key + ("" if request == 1 else ":again"
                                                             if request == 2 else f":again-{request - 1}"))
        content, outcome, why = _judge(reply)
        rows.append(record_request(payer, reply, outcome=outcome, detail=why,
                                   answer=content.as_json() if content is not None else None, mock=mock))
        if content is not None:
            return answer_from(content, rows)
    raise MalformedAnswer(f"Claude's answer failed validation {'twice' if len(rows) == 2 else f'{len(rows)} times'}: "
                          f"{why}")


def record_request(payer: Payer, reply: Reply, *, outcome: str, detail: str, answer: dict | None,
                   mock: bool) -> AiRequest:
    """Put an answered request on the books, in a short transaction of its own (the caller holds none)
    and unfenced: the money is spent whichever attempt owns the job. PostgreSQL away is waited for up
    to AI_RECORD_RETRY_SECONDS: the answer exists only in this process until it is written, and a job
    whose answer is lost pays for another. Past that it is logged whole (request id, tokens, cost)."""
    model = settings.ANTHROPIC_MODEL
    row = AiRequest(job_id=payer.job_id, fence=payer.fence, lead_id=payer.lead_id, model=model,
                    request_id=reply.request_id[:200], message_id=reply.message_id[:200], mock=mock, outcome=outcome,
                    detail=detail[:500], answer=answer, input_tokens=reply.usage.input_tokens,
                    output_tokens=reply.usage.output_tokens, cache_write_tokens=reply.usage.cache_write_tokens,
                    cache_read_tokens=reply.usage.cache_read_tokens, cost_usd=cost_of(reply.usage, model),
                    duration_ms=reply.duration_ms)
    give_up_at = time.monotonic() + settings.AI_RECORD_RETRY_SECONDS
    while True:
        try:
            row.save(force_insert=True)
            return row
        except IntegrityError:
            if not row.request_id:
                raise
            # The try before committed, and only its answer was lost with the connection.
            return AiRequest.objects.get(request_id=row.request_id)
        except (OperationalError, InterfaceError) as exc:
            connection.close()  # the next try opens a new connection
            if time.monotonic() >= give_up_at:
                logger.error("job %s: a paid Claude answer could not be recorded (%s): request %s, model %s, "
                             "%d tokens, %s", payer.job_id, type(exc).__name__, reply.request_id or "(mock)", model,
                             reply.usage.total, usd(row.cost_usd))
                raise
            time.sleep(RECORD_RETRY_PAUSE_SECONDS)


def answer_from(content: SiteContent, rows: list[AiRequest]) -> Answer:
    usage = Usage()
    for row in rows:
        usage += Usage(row.input_tokens, row.output_tokens, row.cache_write_tokens, row.cache_read_tokens)
    return Answer(content, tuple(row.pk for row in rows), usage, sum((row.cost_usd for row in rows), Decimal(0)),
                  mock=any(row.mock for row in rows))
