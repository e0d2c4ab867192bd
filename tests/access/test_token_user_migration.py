"""Tokens made before tokens had users get their service user from the migration; tokens made before
scopes keep what they could do."""
import pytest
from django.test import Client

from tests.migrating import migrate, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def back_to_the_latest():
    yield  # the tests after these run on the whole schema
    migrate_to_latest()


def test_an_existing_token_gets_a_service_user_that_cannot_log_in():
    old = migrate(("access", "0001_initial"))
    old.get_model("access", "ApiToken").objects.create(name="legacy", key_hash="h" * 64, prefix="rsl_abcd")

    new = migrate(("access", "0002_apitoken_user"))

    token = new.get_model("access", "ApiToken").objects.select_related("user").get(name="legacy")
    assert token.user.username == "token:legacy" and token.user.is_active is False
    assert token.user.password.startswith("!")  # Django's mark of an unusable password


def test_existing_tokens_keep_what_they_could_do_as_scopes(redis_client):
    from access.auth import hash_token

    # Given a token that could write and one that could only read, made before scopes
    old = migrate(("access", "0002_apitoken_user"))
    OldToken = old.get_model("access", "ApiToken")
    OldToken.objects.create(name="ops", key_hash=hash_token("rsl_ops-secret"), prefix="rsl_ops-", can_write=True)
    OldToken.objects.create(name="prometheus", key_hash=hash_token("rsl_prom-secret"), prefix="rsl_prom",
                            can_write=False)

    # When the scopes arrive
    new = migrate(("access", "0003_apitoken_scopes"))

    # Then the writer holds every scope and the reader only read
    scopes = dict(new.get_model("access", "ApiToken").objects.values_list("name", "scopes"))
    assert scopes == {"ops": ["read", "dlq", "deliver", "admin"], "prometheus": ["read"]}
    migrate_to_latest()
    writer, reader = (Client(HTTP_AUTHORIZATION=f"Bearer rsl_{name}-secret") for name in ("ops", "prom"))
    assert writer.post("/api/admin/leads/1/deliver", content_type="application/json").status_code == 404  # let in
    response = reader.delete("/api/admin/dead-letter-queue?id=00000000-0000-0000-0000-000000000001")
    assert response.status_code == 403 and response.json()["missingScope"] == "dlq"
    assert reader.get("/metrics").status_code == 200

    # And going back, a token with any scope beyond read may write again
    back = migrate(("access", "0002_apitoken_user"))
    assert dict(back.get_model("access", "ApiToken").objects.values_list("name", "can_write")) == {
        "ops": True, "prometheus": False}
