"""Sites made before the books of paid requests existed are on the books after the migration."""
from decimal import Decimal

import pytest

from tests.migrating import migrate

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_existing_site_becomes_one_paid_request_with_its_tokens_and_cost():
    old = migrate(("sites", "0001_site"))
    Site = old.get_model("sites", "Site")
    made = [Site.objects.create(job_id=f"00000000-0000-0000-0000-00000000000{n}", design="bold", content={}, html="",
                                model="claude-3-haiku-20240307", mock=n == 1, input_tokens=2000 + n,
                                output_tokens=500, cache_read_tokens=7, cost_usd=Decimal("0.0011") + n)
            for n in range(2)]

    new = migrate(("sites", "0002_ai_requests"))

    rows = list(new.get_model("sites", "AiRequest").objects.order_by("site_id"))
    assert [(r.site_id, r.outcome, r.mock, r.input_tokens, r.cache_read_tokens, r.cost_usd) for r in rows] == [
        (made[0].pk, "valid", False, 2000, 7, Decimal("0.0011")), (made[1].pk, "valid", True, 2001, 7, Decimal("1.0011"))]
    assert all(str(r.job_id) == str(s.job_id) and r.created_at == s.created_at for r, s in zip(rows, made))
