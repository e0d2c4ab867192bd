"""What the fuzz tests generate (bodies, headers, query parameters, ids) and what every answer must be."""
import json
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from django.db import transaction
from hypothesis import HealthCheck, event, settings as hypothesis_settings, strategies as st

EXAMPLES = 200
fuzz_settings = hypothesis_settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what gets generated ---------------------------------------------------------------------------

ODD_STRINGS = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "\U0001F600", "caf\u00e9", "", " ", "\t\n",
               "password=hunter2", "https://u:p@h.io", "<script>alert(1)</script>", "'; drop table x; --",
               "a" * 300, "2147483648", "NaN", "null"]
texts = st.one_of(st.text(max_size=16), st.sampled_from(ODD_STRINGS))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2147483647, 2147483648, 10**20]),
    st.floats(allow_nan=True, allow_infinity=True),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    leaves, lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)),
    max_leaves=10,
)

# Tokens json.dumps cannot write: spliced into the serialised body as a field's raw value.
RAW_TOKENS = [b"NaN", b"-Infinity", b"Infinity", b"1e400", b"-1e400", b"1" + b"0" * 5000, b'"\xed\xa0\x80"',
              b'"\xff\xfe"', b'"a\x00b"', b'"\\u0000"', b'"\\ud800"', b'"\\udc00\\ud800"', b"[" * 40 + b"]" * 40,
              b"[" * 3000 + b"]" * 3000, b'{"a":' * 50 + b"1" + b"}" * 50]


@st.composite
def raw_bodies(draw, documents):
    """A serialised document, then maybe mangled: a raw token spliced in, deep nesting around it,
    cut short, or no JSON at all."""
    raw = json.dumps(draw(documents), allow_nan=True).encode()  # ensure_ascii: NUL, surrogates as \\u escapes
    how = draw(st.sampled_from(["as is"] * 4 + ["splice", "splice", "nest", "truncate", "bytes"]))
    if how == "splice" and b"{" in raw:
        token = draw(st.sampled_from(RAW_TOKENS))
        key = json.dumps(draw(texts)).encode()
        raw = raw.replace(b"{", b"{" + key + b": " + token + (b"" if raw.find(b"{}") == raw.find(b"{") else b", "), 1)
    elif how == "nest":
        depth = draw(st.sampled_from([30, 33, 1000, 20000]))
        raw = b"[" * depth + raw + b"]" * depth
    elif how == "truncate" and raw:
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw) - 1))]
    elif how == "bytes":
        raw = draw(st.binary(max_size=40))
    return raw


# Mostly leads the webhook accepts, so that the accepting path is fuzzed too.
good_email = st.sampled_from(["jane@acme.io", "bob@example.com", "Ann@Sub.Example.org"])
lead = st.builds(
    lambda base, extra: {**extra, **base},
    st.fixed_dictionaries({"email": st.one_of(good_email, good_email, good_email, texts, numbers, st.none())}, optional={
        "employee_count": st.one_of(numbers, texts), "company": st.one_of(texts, values),
        "website": texts, "password": texts,
    }),
    st.dictionaries(texts, values, max_size=3),
)
clean_leads = st.lists(st.fixed_dictionaries({"email": good_email}, optional={
    "first_name": st.text(max_size=10), "employee_count": st.integers(0, 10**6), "tags": st.lists(st.text(max_size=5))}),
    min_size=1, max_size=3)
webhook_documents = st.one_of(clean_leads, clean_leads, st.lists(lead, min_size=1, max_size=4), st.lists(st.one_of(lead, values), max_size=4),
                              lead, values)

query_params = st.dictionaries(
    st.one_of(st.sampled_from(["id", "queue", "limit", "resolved", "x"]), texts),
    st.one_of(texts, numbers.map(str), st.uuids().map(str), st.sampled_from(["delivery", "lead-processing"])),
    max_size=3,
)
content_types = st.sampled_from(["application/json"] * 8 + ["application/json; charset=utf-8", "text/plain", "",
                                 "application/x-www-form-urlencoded", "application/json\x00"])
existing = st.sampled_from(["existing-0", "existing-1"])
ids = st.one_of(existing, existing, existing, st.uuids().map(str), texts, numbers, st.none(),
                st.lists(st.integers(), max_size=2), st.dictionaries(texts, leaves, max_size=1))


def with_query(path: str, params: dict) -> str:
    """Percent-encode every byte, surrogates included, so the query string can carry anything."""
    encode = lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")  # noqa: E731
    return path + ("?" + "&".join(f"{encode(k)}={encode(v)}" for k, v in params.items()) if params else "")


# --- what every answer must be -------------------------------------------------------------------

def assert_answer_ok(response, method: str) -> None:
    event(f"{method} {response.status_code}")  # --hypothesis-show-statistics: what the fuzz reached
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400 and method != "HEAD":
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        assert_json_error(json.loads(response.content))


def assert_json_error(body: dict) -> None:
    """A refusal as the API writes them: {"success": false, "error": "<what is wrong>"}."""
    assert body["success"] is False, body
    assert isinstance(body["error"], str) and len(body["error"]) > 5, body


@contextmanager
def rolled_back() -> Iterator[None]:
    """Each example starts from the same few rows: what it stored is rolled back after its checks."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)
