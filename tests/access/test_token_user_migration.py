"""Tokens made before tokens had users get their service user from the migration."""
import pytest

from tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_existing_token_gets_a_service_user_that_cannot_log_in():
    old = migrate(("access", "0001_initial"))
    old.get_model("access", "ApiToken").objects.create(name="legacy", key_hash="h" * 64, prefix="rsl_abcd")

    new = migrate(("access", "0002_apitoken_user"))

    token = new.get_model("access", "ApiToken").objects.select_related("user").get(name="legacy")
    assert token.user.username == "token:legacy" and token.user.is_active is False
    assert token.user.password.startswith("!")  # Django's mark of an unusable password
