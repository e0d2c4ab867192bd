"""The models and their migrations agree: a change to a model without its migration (or two helpers'
migrations of one app that both call themselves the next) fails here, not on a user's `make up`."""
import pytest
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_each_app_has_one_line_of_migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    assert loader.detect_conflicts() == {}
