"""The campaign template language: substitutions of known fields, four filters, nothing else.

Campaign templates are written by staff who may hold no other right than editing campaigns, so
they are data, not code: Django's template language (loops, `{% load %}`, `|safe`, `{% lorem %}`)
let such a user pin the web process, render megabytes or put a lead's raw HTML in a message.

    Hi {{ first_name|default:"there"|title }}, see {{ site_url }}

- `{{ name }}` or `{{ lead.name }}` / `{{ campaign.name }}`: one of the fields the caller declares
  (the campaign's are `campaign_fields()`); anything else is refused, so nothing reaches an attribute
  or a method of an object.
- Filters: `default:"text"` (when the value is empty), `upper`, `lower`, `title`. No others.
- No tags (`{% ... %}`) and no comments (`{# ... #}`): nothing loops, loads, queries or generates.
- Every value is escaped for its part: HTML-escaped (quotes included) in HTML, as is in the text
  part, and with control, format (bidi, zero-width) and line-break characters made spaces in the
  subject, so a value can never add a header.

Bounds, checked when the template is parsed (so at save, never as a failure later): a part's
source is at most SOURCE_LIMIT characters with at most SUBSTITUTION_LIMIT substitutions, and its
largest possible output (every value at its field's maximum length, grown by the case filters and
by escaping) at most OUTPUT_LIMIT characters. Rendering is one pass over the parsed nodes with no
loop the template controls, so its time is linear in that bounded output (measured in docs/pipeline.md, Campaign templates).

The HTML part of a campaign is sanitised with nh3 (an allowlist sanitizer, Rust's ammonia) at
save, after `check_html` has refused, with its position and reason, whatever the allowlist would
drop: nothing a person wrote disappears without being told.

Provenance for the link tracker: `Template.render` returns a RenderedPart whose `spans` say which
ranges of the output came from a substituted value, and whether that value is the lead's
(`from_lead`). Text outside every span, and spans of our own values (site_url, unsubscribe_url,
campaign.name), are what the template's author wrote.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import html
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import nh3

from resilience.text import header_text

SOURCE_LIMIT = 100_000
SUBSTITUTION_LIMIT = 500
OUTPUT_LIMIT = 300_000
DEFAULT_TEXT_LIMIT = 200
SYSTEM_URL_LIMIT = 2_000  # site_url and unsubscribe_url: our own links, generously bounded

FILTERS = ("default", "upper", "lower", "title")
# Python's case mappings grow a string at most threefold ("ΐ".upper() is three code points), and
# html.escape at most sixfold (`"` -> `&quot;`): the factors of the worst case at save.
CASE_GROWTH, HTML_ESCAPE_GROWTH = 3, 6


class Part(enum.Enum):
    SUBJECT = "subject"
    TEXT = "text"
    HTML = "html"


@dataclass(frozen=True)
class Field:
    name: str
    max_length: int
    from_lead: bool  # the lead's data (never a link) rather than our own value


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    reason: str
    part: str = ""  # set when the problem is reported for one of several parts

    def __str__(self) -> str:
        where = f"{self.part} template, line" if self.part else "line"
        return f"{where} {self.line}, column {self.column}: {self.reason}"


class TemplateError(ValueError):
    """A template that breaks the language's rules; `problems` say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def messages(self) -> list[str]:
        return [str(p) for p in self.problems]


@dataclass(frozen=True)
class Substitution:
    start: int  # offsets of `{{ ... }}` in the source
    end: int
    field: Field
    filters: tuple[tuple[str, str | None], ...]

    def value(self, raw: str) -> tuple[str, bool]:
        """The filtered value and whether it is still the field's (False: the default's text)."""
        out, own = raw[:self.field.max_length], True
        for name, arg in self.filters:
            if name == "default":
                if not out:
                    out, own = arg or "", False
            else:
                out = getattr(out, name)()
        return out, own

    def worst_length(self) -> int:
        length = self.field.max_length
        for name, arg in self.filters:
            length = max(length, len(arg or "")) if name == "default" else length * CASE_GROWTH
        return length


@dataclass(frozen=True)
class Span:
    start: int  # offsets in the rendered text
    end: int
    name: str
    from_lead: bool


@dataclass(frozen=True)
class RenderedPart:
    text: str
    spans: tuple[Span, ...]

    def from_lead(self, start: int, end: int) -> bool:
        """Whether any character of text[start:end] came from the lead's data."""
        return any(span.from_lead and span.start < end and start < span.end for span in self.spans)


# A value in the subject is header text (resilience.text): no line break can start a header, no bidi or
# zero-width character or encoded word can make it read otherwise than it is.
_ESCAPE = {Part.SUBJECT: header_text, Part.TEXT: lambda value: value, Part.HTML: html.escape}


@dataclass(frozen=True)
class Template:
    part: Part
    source: str
    nodes: tuple[str | Substitution, ...]

    @property
    def substitutions(self) -> list[Substitution]:
        return [node for node in self.nodes if isinstance(node, Substitution)]

    def render(self, values: Mapping[str, Any]) -> RenderedPart:
        """The part for these values (missing ones are empty); see RenderedPart for provenance."""
        escape = _ESCAPE[self.part]
        out: list[str] = []
        spans: list[Span] = []
        at = 0
        for node in self.nodes:
            if isinstance(node, str):
                piece = node
            else:
                value, own = node.value(str(values.get(node.field.name) or ""))
                piece = escape(value)
                spans.append(Span(at, at + len(piece), node.field.name, node.field.from_lead and own))
            out.append(piece)
            at += len(piece)
        return RenderedPart("".join(out), tuple(spans))


# --- parsing -------------------------------------------------------------------------------------

_EXPRESSION = re.compile(r"""
    \s*(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*
    (?P<filters>(?:\|\s*[A-Za-z_][A-Za-z0-9_]*\s*(?::\s*(?:"[^"]*"|'[^']*'))?\s*)*)$""", re.VERBOSE)
_FILTER = re.compile(r"""\|\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'))?\s*""")
_OPENER = re.compile(r"\{\{|\{%|\{#")
_CLOSER = re.compile(r"""\}\}|"[^"\n]*"|'[^'\n]*'|\n""")


def position(source: str, offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of `offset` in `source`."""
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def parse(source: str, part: Part, fields: Mapping[str, Field]) -> Template:
    """The template, or TemplateError listing every problem found (position and reason)."""
    problems: list[Problem] = []

    def problem(offset: int, reason: str) -> None:
        problems.append(Problem(*position(source, offset), reason))

    if len(source) > SOURCE_LIMIT:
        raise TemplateError([Problem(1, 1, f"the template has {len(source)} characters, at most {SOURCE_LIMIT}")])
    nodes: list[str | Substitution] = []
    at = 0
    for opener in _OPENER.finditer(source):
        if opener.start() < at:
            continue  # inside the previous substitution (a default text may hold "{{")
        if opener.group() != "{{":
            end = source.find("%}" if opener.group() == "{%" else "#}", opener.start())
            shown = source[opener.start():end + 2 if end >= 0 else opener.start() + 40].split("\n")[0][:60]
            what = "tags" if opener.group() == "{%" else "comments"
            problem(opener.start(), f"{what} are not part of the campaign template language: {shown}")
            continue
        close = _find_close(source, opener.end())
        if close is None:
            problem(opener.start(), "{{ is not closed by }} on the same line")
            at = len(source)
            break
        nodes.append(source[at:opener.start()])
        substitution = _substitution(source, opener.start(), close, fields, problem)
        if substitution is not None:
            nodes.append(substitution)
        at = close
    nodes.append(source[at:])
    nodes = [node for node in nodes if node != ""]
    template = Template(part, source, tuple(nodes))
    count = len(template.substitutions)
    if count > SUBSTITUTION_LIMIT:
        problem(0, f"{count} substitutions, at most {SUBSTITUTION_LIMIT}")
    if not problems and (worst := worst_output(template)) > OUTPUT_LIMIT:
        problem(0, f"the output could reach {worst} characters (every value at its longest), at most {OUTPUT_LIMIT}")
    if problems:
        raise TemplateError(problems)
    return template


def _find_close(source: str, start: int) -> int | None:
    """The offset just after the `}}` closing a substitution that starts at `start`; quoted texts
    may hold braces, a line break ends the search."""
    for match in _CLOSER.finditer(source, start):
        if match.group() == "}}":
            return match.end()
        if match.group() == "\n":
            return None
    return None


def _substitution(source: str, start: int, end: int, fields: Mapping[str, Field], problem) -> Substitution | None:
    inner = source[start + 2:end - 2]
    match = _EXPRESSION.match(inner)
    if not inner.strip():
        problem(start, "empty substitution {{ }}")
        return None
    if match is None:
        problem(start, f"not a substitution: {{{{{inner}}}}} (write {{{{ field }}}} or "
                       f"{{{{ field|filter }}}}; filters: {', '.join(FILTERS)})")
        return None
    name = match.group("name")
    field = fields.get(name)
    ok = True
    if field is None:
        problem(start, f"unknown field {name!r} (fields: {', '.join(sorted(fields))})")
        ok = False
    filters: list[tuple[str, str | None]] = []
    for f in _FILTER.finditer(match.group("filters")):
        filter_name = f.group("name")
        arg = f.group("dq") if f.group("dq") is not None else f.group("sq")
        if filter_name not in FILTERS:
            problem(start, f"unknown filter {filter_name!r} (filters: {', '.join(FILTERS)})")
            ok = False
        elif filter_name == "default" and arg is None:
            problem(start, 'default needs its text: |default:"..."')
            ok = False
        elif filter_name != "default" and arg is not None:
            problem(start, f"{filter_name} takes no argument")
            ok = False
        elif arg is not None and len(arg) > DEFAULT_TEXT_LIMIT:
            problem(start, f"the default text has {len(arg)} characters, at most {DEFAULT_TEXT_LIMIT}")
            ok = False
        filters.append((filter_name, arg))
    return Substitution(start, end, field, tuple(filters)) if ok else None


def worst_output(template: Template) -> int:
    """The longest output any values could give (each at its field's maximum length)."""
    growth = HTML_ESCAPE_GROWTH if template.part is Part.HTML else 1
    return sum(len(node) if isinstance(node, str) else node.worst_length() * growth for node in template.nodes)


# --- the campaign's fields -----------------------------------------------------------------------

# The lead's fields a template may use, and our own values (never the lead's).
LEAD_FIELDS = ("email", "first_name", "last_name", "title", "company", "domain", "website", "industry", "country")
SYSTEM_URLS = ("site_url", "unsubscribe_url")


@functools.cache
def campaign_fields() -> dict[str, Field]:
    """Every name a campaign template may use: the lead's fields (bare and as lead.<field>), site_url,
    unsubscribe_url and campaign.name."""
    from emails.models import Campaign
    from leads.models import Lead

    fields: dict[str, Field] = {}
    for name in LEAD_FIELDS:
        max_length = Lead._meta.get_field(name).max_length
        fields[name] = fields[f"lead.{name}"] = Field(name, max_length, from_lead=True)
    for name in SYSTEM_URLS:
        fields[name] = Field(name, SYSTEM_URL_LIMIT, from_lead=False)
    fields["campaign.name"] = Field("campaign.name", Campaign._meta.get_field("name").max_length, from_lead=False)
    return fields


def project_fields(names: Iterable[str]) -> dict[str, Field]:
    """The names a project template (emails/templates/emails/<name>/) may use: the campaign's and
    whatever else its caller passes. The caller's own values count as ours, the lead's fields as the lead's."""
    fields = dict(campaign_fields())
    for name in names:
        fields.setdefault(name, Field(name, SYSTEM_URL_LIMIT, from_lead=False))
    return fields


def values_of(context: Mapping[str, Any]) -> dict[str, str]:
    """Flat values for render(): {"lead": {"company": "Acme"}} is also "lead.company"."""
    flat: dict[str, str] = {}
    for key, value in context.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{inner}": "" if v is None else str(v) for inner, v in value.items()})
        else:
            flat[key] = "" if value is None else str(value)
    return flat


# --- HTML: the allowlist, the check that says why, the sanitiser ---------------------------------

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "li", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "u", "ul"})
ALLOWED_ATTRIBUTES = {
    "*": frozenset({"title", "align", "dir", "lang", "style"}),
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "table": frozenset({"width", "border", "cellpadding", "cellspacing"}),
    "td": frozenset({"width", "colspan", "rowspan", "valign"}),
    "th": frozenset({"width", "colspan", "rowspan", "valign"}),
}
URL_ATTRIBUTES = frozenset({"href", "src"})
URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Attributes a value may be substituted into: plain text to the reader.
TEXT_ATTRIBUTES = frozenset({"title", "alt"})
# No property that takes a url() (background, background-image, list-style-image, border-image ...).
STYLE_PROPERTIES = frozenset({
    "color", "background-color", "font-family", "font-size", "font-style", "font-weight", "line-height",
    "letter-spacing", "text-align", "text-decoration", "text-transform", "vertical-align", "white-space",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-radius", "border-collapse", "width", "height", "max-width", "min-width", "display"})
# A whole document may be pasted: its frame is dropped (a message is a fragment), <title> with its text.
DOCUMENT_TAGS = frozenset({"html", "head", "body", "title"})
_STYLE_DANGER = re.compile(r"url\s*\(|expression\s*\(|image-set\s*\(|@import|\\|javascript:", re.IGNORECASE)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")


def _sanitise(fragment: str) -> str:
    return nh3.clean(fragment, tags=set(ALLOWED_TAGS), clean_content_tags={"script", "style", "title"},
                     attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), filter_style_properties=set(STYLE_PROPERTIES),
                     link_rel="noopener noreferrer", strip_comments=True)


class _Placeholders:
    """The HTML source with every substitution replaced by an inert word, so the HTML parser and the
    sanitiser see where values go without being confused by `{{ ... "..." }}`; offsets map back."""

    def __init__(self, template: Template) -> None:
        source = template.source
        nonce = secrets.token_hex(4)
        while nonce in source:
            nonce = secrets.token_hex(4)
        self.template = template
        self.by_word: dict[str, Substitution] = {}
        self._shifts: list[tuple[int, int]] = []  # (offset in text after a word, growth of the original)
        pieces, at, out = [], 0, 0
        for sub in template.substitutions:
            word = f"tpl{nonce}x{len(self.by_word)}x"
            pieces.append(source[at:sub.start])
            out += sub.start - at
            pieces.append(word)
            out += len(word)
            self._shifts.append((out, (sub.end - sub.start) - len(word)))
            self.by_word[word] = sub
            at = sub.end
        pieces.append(source[at:])
        self.text = "".join(pieces)
        self.pattern = re.compile(f"tpl{nonce}x[0-9]+x")

    def original_offset(self, offset: int) -> int:
        return offset + sum(growth for after, growth in self._shifts if after <= offset)

    def in_(self, value: str) -> list[Substitution]:
        return [self.by_word[word] for word in self.pattern.findall(value) if word in self.by_word]

    def restore(self, text: str) -> str:
        source = self.template.source
        return self.pattern.sub(lambda m: source[self.by_word[m.group()].start:self.by_word[m.group()].end], text)


class _HtmlChecker(HTMLParser):
    def __init__(self, placeholders: _Placeholders) -> None:
        super().__init__(convert_charrefs=True)
        self.placeholders = placeholders
        self.problems: list[Problem] = []
        self.commented: set[str] = set()
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", placeholders.text)]

    def problem(self, reason: str) -> None:
        line, column = self.getpos()
        offset = self.placeholders.original_offset(self._line_starts[line - 1] + column)
        self.problems.append(Problem(*position(self.placeholders.template.source, offset), reason))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            if any(name != "charset" for name, _ in attrs):
                self.problem("<meta> other than <meta charset> is not allowed (a refresh or redirect)")
            return
        if tag in DOCUMENT_TAGS:
            return
        if tag not in ALLOWED_TAGS:
            self.problem(f"<{tag}> is not allowed (allowed: {', '.join(sorted(ALLOWED_TAGS))})")
            return
        allowed = ALLOWED_ATTRIBUTES["*"] | ALLOWED_ATTRIBUTES.get(tag, frozenset())
        if tag == "a":
            allowed |= {"rel"}  # the sanitiser writes rel="noopener noreferrer" on every link itself
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problem(f"<{tag}>: event handler {name}= is not allowed")
            elif name not in allowed:
                self.problem(f"<{tag}>: the attribute {name} is not allowed (allowed: {', '.join(sorted(allowed))})")
            elif name in URL_ATTRIBUTES:
                self._check_url(tag, name, value)
            elif self.placeholders.in_(value) and name not in TEXT_ATTRIBUTES:
                self.problem(f"<{tag}>: no substitution in the {name} attribute "
                             f"(only in {', '.join(sorted(TEXT_ATTRIBUTES))}, and site_url/unsubscribe_url in "
                             f"{', '.join(sorted(URL_ATTRIBUTES))})")
            elif name == "style":
                self._check_style(tag, value)

    def _check_url(self, tag: str, name: str, value: str) -> None:
        subs = self.placeholders.in_(value)
        if any(sub.field.from_lead for sub in subs):
            self.problem(f"<{tag} {name}>: the lead's data cannot be a link (only site_url and unsubscribe_url)")
            return
        # Browsers ignore whitespace and control characters inside a scheme ("jav\tascript:").
        squeezed = re.sub(r"[\x00-\x20\x7f]+", "", value).lower()
        first = self.placeholders.pattern.match(squeezed)
        if first is not None:
            return  # starts with site_url or unsubscribe_url
        scheme = _SCHEME.match(squeezed)
        if scheme is None:
            self.problem(f"<{tag} {name}>: {value[:60]!r} is not an absolute link (http, https or mailto)")
        elif scheme.group(1) not in URL_SCHEMES:
            self.problem(f"<{tag} {name}>: {scheme.group(1)}: links are not allowed (only http, https, mailto)")

    def _check_style(self, tag: str, value: str) -> None:
        if _STYLE_DANGER.search(value):
            self.problem(f"<{tag} style>: url(), expression(), @import and escapes are not allowed in styles")
            return
        for declaration in filter(None, (d.strip() for d in value.split(";"))):
            prop = declaration.partition(":")[0].strip().lower()
            if prop not in STYLE_PROPERTIES:
                self.problem(f"<{tag} style>: the property {prop!r} is not allowed "
                             f"(allowed: {', '.join(sorted(STYLE_PROPERTIES))})")

    def handle_comment(self, data: str) -> None:
        self.commented.update(self.placeholders.pattern.findall(data))


def check_html(template: Template) -> _Placeholders:
    """Refuse (TemplateError, each problem with its place) what the sanitiser would drop."""
    placeholders = _Placeholders(template)
    checker = _HtmlChecker(placeholders)
    checker.feed(placeholders.text)
    checker.close()
    problems = checker.problems
    if not problems:
        kept = set(placeholders.pattern.findall(_sanitise(placeholders.text)))
        for word, sub in placeholders.by_word.items():
            if word not in kept and word not in checker.commented:
                problems.append(Problem(*position(template.source, sub.start),
                                        "this substitution would be removed by the sanitiser (it is inside an element "
                                        "that is dropped, such as <title>)"))
    if problems:
        raise TemplateError(problems)
    return placeholders


def sanitise_html(source: str, fields: Mapping[str, Field]) -> str:
    """The HTML template as it is stored: checked (TemplateError with reasons), then sanitised by the
    allowlist, substitutions kept as written."""
    if not source.strip():
        return ""
    placeholders = check_html(parse(source, Part.HTML, fields))
    return placeholders.restore(_sanitise(placeholders.text))


@dataclass(frozen=True)
class Templates:
    subject: Template
    text: Template
    html: Template | None


def _each_part(subject: str, text: str, html_source: str, make) -> list[Any]:
    """make(part, source) for the three parts; every part's problems, each naming its part, at once."""
    problems: list[Problem] = []
    out: list[Any] = []
    for part, source in ((Part.SUBJECT, subject), (Part.TEXT, text), (Part.HTML, html_source)):
        try:
            out.append(make(part, source))
        except TemplateError as exc:
            problems.extend(dataclasses.replace(problem, part=part.value) for problem in exc.problems)
    if problems:
        raise TemplateError(problems)
    return out


def compile_parts(subject: str, text: str, html_source: str, fields: Mapping[str, Field], *,
                  check: bool) -> Templates:
    """The three parts parsed (no HTML part when its source is blank); with `check`, the HTML part
    must also pass the allowlist (a campaign's, read back from the database: what bypassed the
    save's check is refused here, not sent)."""
    def make(part: Part, source: str) -> Template | None:
        if part is Part.HTML and not source.strip():
            return None
        template = parse(source, part, fields)
        if check and part is Part.HTML:
            check_html(template)
        return template
    return Templates(*_each_part(subject, text, html_source, make))


def _clean_part(part: Part, source: str) -> str:
    """A campaign part checked as a save does, as it is stored (the HTML part sanitised)."""
    if part is Part.HTML:
        return sanitise_html(source, campaign_fields())
    parse(source, part, campaign_fields())
    return source


def clean_campaign(subject: str, text: str, html_source: str) -> str:
    """Check a campaign's three templates as a save does; the HTML part as it is stored (sanitised).
    TemplateError names each problem's part, line, column and reason."""
    return _each_part(subject, text, html_source, _clean_part)[2]


# --- carrying templates over from Django's template language (migration 0002) ---------------------

def convert_django(source: str, part: Part) -> str:
    """`source`, a Django template, in this language when it means the same here: variables of known
    fields with default/upper/lower/title, and {# comments #} (which render nothing, so are dropped).
    Anything else raises TemplateError saying what has no equivalent."""
    from django.template.base import DebugLexer, TokenType

    problems: list[Problem] = []
    pieces: list[str] = []
    for token in DebugLexer(source).tokenize():
        line, column = position(source, token.position[0])
        if token.token_type is TokenType.TEXT:
            pieces.append(token.contents)
        elif token.token_type is TokenType.VAR:
            # Django marks a filter's quoted argument safe: in HTML, "<b>" would come out as a tag.
            quoted = re.findall(r'"([^"]*)"|\'([^\']*)\'', token.contents)
            if part is Part.HTML and any(html.escape(a or b) != (a or b) for a, b in quoted):
                problems.append(Problem(line, column, f"{{{{ {token.contents} }}}}: a quoted text with HTML in it "
                                                      "would be escaped here, not written as HTML"))
            pieces.append(f"{{{{ {token.contents} }}}}")
        elif token.token_type is TokenType.BLOCK:
            problems.append(Problem(line, column, f"{{% {token.contents} %}} has no equivalent (no tags)"))
    if problems:
        raise TemplateError(problems)
    return "".join(pieces)  # its fields and filters are checked by convert_campaign


def convert_campaign(subject: str, text: str, html_source: str) -> tuple[str, str, str]:
    """A campaign's three Django templates in this language, checked and the HTML part sanitised as
    a save would; TemplateError (each problem naming its part) when any part cannot keep its meaning."""
    return tuple(_each_part(subject, text, html_source,
                            lambda part, source: _clean_part(part, convert_django(source, part))))
