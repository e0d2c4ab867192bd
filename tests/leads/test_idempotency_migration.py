"""leads 0005: Idempotency-Key values stored before it are hashed in place, and still answer a retry."""
import hashlib
import json

import pytest

from tests.migrating import migrate, migrate_to_latest

pytestmark = pytest.mark.django_db(transaction=True)
BODY = json.dumps([{"email": "a@acme.io"}]).encode()


def test_keys_stored_by_value_are_hashed_and_a_retry_still_gets_the_first_answer(client):
    old = migrate(("leads", "0004_lead_won_delivered"))
    old.get_model("leads", "WebhookIdempotencyKey").objects.create(
        key="batch-before-0005", body_sha256=hashlib.sha256(BODY).hexdigest(), status_code=202,
        response={"success": True, "first": True})

    new = migrate(("leads", "0005_idempotency_key_sha256"))

    rows = list(new.get_model("leads", "WebhookIdempotencyKey").objects.values_list("key_sha256", flat=True))
    assert rows == [hashlib.sha256(b"batch-before-0005").hexdigest()]
    migrate_to_latest()
    response = client.post("/api/webhooks/clay", data=BODY, content_type="application/json",
                           HTTP_X_CLAY_SECRET="test-clay-secret", HTTP_IDEMPOTENCY_KEY="batch-before-0005")
    assert response["Idempotent-Replayed"] == "true" and response.json() == {"success": True, "first": True}
