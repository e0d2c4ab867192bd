"""Campaign templates move from Django's template language to emails.templating: what means the
same there is rewritten (variables, the four filters, comments dropped); what does not is left as
written, with a note saying why (a draft then cannot be previewed or launched until it is fixed)."""
from django.db import migrations, models

from emails.templating import TemplateError, convert_campaign


def convert_templates(apps, schema_editor) -> None:
    Campaign = apps.get_model("emails", "Campaign")
    for campaign in Campaign.objects.all():
        try:
            converted = convert_campaign(campaign.subject_template, campaign.text_template, campaign.html_template)
        except TemplateError as exc:
            campaign.template_note = ("Not converted from Django's template language (left as written; fix and "
                                      f"save to use it): {exc}")
            campaign.save(update_fields=["template_note"])
            continue
        campaign.subject_template, campaign.text_template, campaign.html_template = converted
        campaign.save(update_fields=["subject_template", "text_template", "html_template"])


class Migration(migrations.Migration):

    dependencies = [
        ('emails', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='campaign',
            name='template_note',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AlterField(
            model_name='campaign',
            name='html_template',
            field=models.TextField(blank=True, help_text='HTML part (optional), sanitised when saved; every http(s) link is tracked.'),
        ),
        migrations.AlterField(
            model_name='campaign',
            name='text_template',
            field=models.TextField(help_text='Plain-text part. {{ first_name }}, {{ company|default:"you" }} ... {{ site_url }}, {{ unsubscribe_url }} (added at the end when missing).'),
        ),
        # Backwards: what was converted is still a Django template of the same meaning.
        migrations.RunPython(convert_templates, migrations.RunPython.noop),
    ]
