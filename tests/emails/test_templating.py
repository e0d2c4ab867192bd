"""The campaign template language on its own: escaping per part, provenance for the link tracker,
the bounds, the sanitiser's output, the project's own templates, and carrying Django templates over."""
import time

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from emails import templating
from emails.services import template_sources
from emails.templating import (OUTPUT_LIMIT, SOURCE_LIMIT, SUBSTITUTION_LIMIT, Part, TemplateError, campaign_fields,
                               parse)

pytestmark = pytest.mark.django_db
HOSTILE = '<b onclick="x">"Tom" & \'Jerry\'</b>\r\nBcc: all@evil.example\u202e\u200b'


def render(source: str, part: Part, **values: str) -> templating.RenderedPart:
    return parse(source, part, campaign_fields()).render(values)


def test_each_part_escapes_values_its_own_way():
    assert render("<p title=\"{{ first_name }}\">{{ first_name }}</p>", Part.HTML, first_name=HOSTILE).text == (
        '<p title="&lt;b onclick=&quot;x&quot;&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;&lt;/b&gt;\r\nBcc: '
        'all@evil.example\u202e\u200b">&lt;b onclick=&quot;x&quot;&gt;&quot;Tom&quot; &amp; &#x27;Jerry&#x27;'
        '&lt;/b&gt;\r\nBcc: all@evil.example\u202e\u200b</p>')
    assert render("{{ first_name }}", Part.TEXT, first_name=HOSTILE).text == HOSTILE
    assert render("Hi {{ first_name }}", Part.SUBJECT, first_name=HOSTILE).text == (
        'Hi <b onclick="x">"Tom" & \'Jerry\'</b> Bcc: all@evil.example')  # one line, nothing invisible


def test_filters_and_the_default():
    source = '{{ first_name|default:"there"|title }} {{ lead.company|upper }} {{ last_name|lower }}'
    assert render(source, Part.TEXT, first_name="", company="acme", last_name="DOE").text == "There ACME doe"
    assert render(source, Part.TEXT, first_name="jane o'neil").text.startswith("Jane O'Neil ")


def test_spans_say_which_text_came_from_the_lead():
    out = render('Hi {{ first_name|default:"there" }}, see {{ site_url }} {{ company }}', Part.TEXT,
                 first_name="", site_url="https://sites.example/1/", company="Visit https://evil.example/login now")
    assert out.text == "Hi there, see https://sites.example/1/ Visit https://evil.example/login now"
    evil, ours = out.text.index("https://evil"), out.text.index("https://sites")
    assert out.from_lead(evil, evil + 10) and not out.from_lead(ours, ours + len("https://sites.example/1/"))
    assert not out.from_lead(3, 8)  # the default's text is the author's
    assert [(s.name, s.from_lead) for s in out.spans] == [("first_name", False), ("site_url", False),
                                                          ("company", True)]


@pytest.mark.parametrize("source, reason", [
    ("{{ first_name ", "{{ is not closed by }} on the same line"),
    ("{{ }}", "empty substitution"),
    ("{{ first_name|upper:\"x\" }}", "upper takes no argument"),
    ("{{ first_name|default }}", "default needs its text"),
    ('{{ first_name|default:"' + "x" * 201 + '" }}', "the default text has 201 characters, at most 200"),
    ("{{ first_name + 1 }}", "not a substitution"),
    ("{# note #}", "comments are not part of"),
    ("ok\n\n   {{ phone }}", "line 3, column 4: unknown field 'phone'"),
])
def test_what_breaks_the_rules_is_refused_with_its_place(source, reason):
    with pytest.raises(TemplateError) as refused:
        parse(source, Part.TEXT, campaign_fields())
    assert reason in str(refused.value)


def test_the_bounds_are_checked_when_parsed():
    fields = campaign_fields()
    with pytest.raises(TemplateError, match=f"at most {SOURCE_LIMIT}"):
        parse("x" * (SOURCE_LIMIT + 1), Part.TEXT, fields)
    with pytest.raises(TemplateError, match=f"at most {SUBSTITUTION_LIMIT}"):
        parse("{{ email }}" * (SUBSTITUTION_LIMIT + 1), Part.TEXT, fields)
    # 300 websites, upper-cased, HTML-escaped: 300 * 500 * 3 * 6 characters at the worst
    with pytest.raises(TemplateError, match=f"the output could reach 2700000 characters .* at most {OUTPUT_LIMIT}"):
        parse("{{ website|upper }}" * 300, Part.HTML, fields)


def test_the_largest_template_allowed_renders_at_its_bound_quickly():
    """The time bound: no loop is the template's, so a template at its bounds (the longest source,
    with as many of the longest values as the output bound allows) is one linear pass."""
    fields = campaign_fields()
    source = ("{{ first_name }}" * 300).ljust(SOURCE_LIMIT, "x")
    template = parse(source, Part.HTML, fields)
    values = {"first_name": '"' * 1000}  # cut to the field's 100 characters, each escaped to six
    started = time.perf_counter()
    out = template.render(values)
    elapsed = time.perf_counter() - started
    assert len(out.text) == templating.worst_output(template) <= OUTPUT_LIMIT
    assert elapsed < 0.25, f"{elapsed:.3f} s"


def test_the_sanitiser_keeps_what_the_check_allows_and_is_stable():
    fields = campaign_fields()
    source = ('<table width="600" cellpadding="4"><tr><td valign="top"><h1>Hi {{ first_name }}</h1>'
              '<img src="https://cdn.example/logo.png" alt="{{ company }} logo" width="120"></td></tr></table>'
              '<p><a href="mailto:hello@agency.example">write</a> <a href="{{ unsubscribe_url }}">stop</a></p>')
    once = templating.sanitise_html(source, fields)
    assert templating.sanitise_html(once, fields) == once
    assert '<img src="https://cdn.example/logo.png" alt="{{ company }} logo" width="120">' in once
    assert '<a href="{{ unsubscribe_url }}" rel="noopener noreferrer">stop</a>' in once


def test_the_projects_own_templates_are_in_the_language():
    for name, values in (("outreach", {"first_name": "", "company": "<Acme>", "site_url": "https://s.example/1/"}),
                         ("handover", {"first_name": "Jane", "site_url": "https://s.example/1/"})):
        templates = templating.compile_parts(*template_sources(name), templating.project_fields(values), check=False)
        html = templates.html.render(values).text
        assert "https://s.example/1/" in html and "<Acme>" not in html


# --- carrying Django templates over -------------------------------------------------------------

@pytest.mark.parametrize("django, ours", [
    ("Hi {{ first_name|default:'there' }}{# greeting #}, {{ lead.company|upper }}",
     "Hi {{ first_name|default:'there' }}, {{ lead.company|upper }}"),
    ("{{site_url}}", "{{ site_url }}"),
])
def test_django_templates_that_mean_the_same_are_rewritten(django, ours):
    assert templating.convert_django(django, Part.TEXT) == ours


@pytest.mark.parametrize("django, reason", [
    ("{% if first_name %}Hi{% endif %}", "{% if first_name %} has no equivalent"),
    ("{{ first_name|safe }}", "unknown filter 'safe'"),
    ("{{ lead.email_messages.count }}", "unknown field"),
    ('<p>{{ first_name|default:"<b>you</b>" }}</p>', "a quoted text with HTML in it"),
    ("<script>x()</script>", "<script> is not allowed"),
])
def test_django_templates_that_cannot_keep_their_meaning_are_refused_with_the_reason(django, reason):
    with pytest.raises(TemplateError) as refused:
        templating.convert_campaign("Hi", "Hi", django)
    assert reason in str(refused.value) and "html template, line 1" in str(refused.value)


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_what_it_can_and_notes_why_not():
    executor = MigrationExecutor(connection)
    executor.migrate([("emails", "0001_initial")])
    old = executor.loader.project_state([("emails", "0001_initial")]).apps.get_model("emails", "Campaign")
    fine = old.objects.create(name="fine", subject_template="Hi {{ first_name|default:'you' }}{# x #}",
                              text_template="{{ site_url }}", html_template='<p><a href="{{ site_url }}">x</a></p>')
    loop = old.objects.create(name="loop", subject_template="Hi", text_template="{% for x in y %}{% endfor %}",
                              html_template="<p>{{ company|safe }}</p>")
    launched = old.objects.create(name="sent", subject_template="Hi", text_template="{% now 'Y' %}",
                                  status="launched")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    from emails.models import Campaign

    fine, loop, launched = (Campaign.objects.get(pk=c.pk) for c in (fine, loop, launched))
    assert (fine.subject_template, fine.template_note) == ("Hi {{ first_name|default:'you' }}", "")
    assert fine.html_template == '<p><a href="{{ site_url }}" rel="noopener noreferrer">x</a></p>'
    assert loop.status == "draft" and loop.text_template == "{% for x in y %}{% endfor %}"  # left as written
    assert "text template, line 1, column 1: {% for x in y %} has no equivalent" in loop.template_note
    assert "html template, line 1, column 4" in loop.template_note and "unknown filter 'safe'" in loop.template_note
    assert launched.status == "launched" and "{% now 'Y' %} has no equivalent" in launched.template_note
