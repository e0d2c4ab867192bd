import re

from django.db import migrations

# Sites rendered before 0004 stored a call to action that was not a link: `<strong>LABEL</strong>` in the
# page's `<div class="cta">`. Their stored pages are made to work like new ones: the label is wrapped in a
# link to the site's own /book (relative, as the designs write it), the <strong> and so its styling kept.
# Only that one element changes; the label (escaped when it was rendered) is carried over untouched.
OLD_CTA = re.compile(r'(<div class="cta">(?:<p>.*?</p>)?)(<strong>.*?</strong>)', re.S)
BATCH = 500


def link_old_calls_to_action(apps, schema_editor):
    Site = apps.get_model("sites", "Site")
    old = Site.objects.filter(html__contains='<div class="cta">').exclude(html__contains='href="book"')
    for site in old.only("pk", "html").iterator(chunk_size=BATCH):
        html, found = OLD_CTA.subn(r'\1<a href="book" rel="nofollow">\2</a>', site.html, count=1)
        if found:
            Site.objects.filter(pk=site.pk).update(html=html)


class Migration(migrations.Migration):

    dependencies = [
        ("sites", "0005_spend_hours"),
    ]

    # Backwards leaves the links: a working call to action is no harm on the older schema.
    operations = [migrations.RunPython(link_old_calls_to_action, migrations.RunPython.noop, elidable=True)]
