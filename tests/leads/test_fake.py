"""Fake lead generation (leads/fake.py): pure functions, no database."""
import random
from dataclasses import asdict

import pytest

from leads.fake import COLUMN_STYLES, EXTRA_COLUMNS, make_fake_leads, plan_counts
from leads.fields import ALIASES
from leads.services import InvalidLead, normalize_lead
from leads.validation import validate_batch


def sort_out(leads: list[dict]) -> tuple[list[int], list[int], dict[int, int]]:
    """(indexes of originals, of invalid leads, duplicate index -> index of the earlier lead it repeats)."""
    originals, invalid, repeats = [], [], {}
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(leads):
        try:
            email = normalize_lead(raw).email
        except InvalidLead:
            invalid.append(index)
            continue
        if email in first_seen:
            repeats[index] = first_seen[email]
        else:
            first_seen[email] = index
            originals.append(index)
    return originals, invalid, repeats


def test_a_seed_gives_the_planned_numbers_of_duplicates_and_invalid_leads():
    leads = make_fake_leads(200, duplicates=0.1, invalid=0.05, rng=random.Random(1))

    originals, invalid, repeats = sort_out(leads)
    assert (len(originals), len(repeats), len(invalid)) == (170, 20, 10)


def test_the_same_seed_gives_the_same_leads_and_another_seed_does_not():
    assert make_fake_leads(50, rng=random.Random(7)) == make_fake_leads(50, rng=random.Random(7))
    assert make_fake_leads(50, rng=random.Random(7)) != make_fake_leads(50, rng=random.Random(8))


@pytest.mark.parametrize("seed", range(5))
def test_every_lead_passes_the_webhooks_validation(seed):
    leads = make_fake_leads(500, duplicates=0.2, invalid=0.2, rng=random.Random(seed))

    assert validate_batch(leads) == []


def test_invalid_leads_are_rejected_by_processing():
    leads = make_fake_leads(100, duplicates=0, invalid=0.3, rng=random.Random(3))

    _, invalid, _ = sort_out(leads)
    assert len(invalid) == 30
    for index in invalid:
        with pytest.raises(InvalidLead):
            normalize_lead(leads[index])


def test_duplicates_repeat_an_earlier_email_spelled_differently_and_add_fields():
    leads = make_fake_leads(300, duplicates=0.3, invalid=0, rng=random.Random(4))

    _, _, repeats = sort_out(leads)
    assert len(repeats) == 90
    assert all(earlier < index for index, earlier in repeats.items())
    raw_email = lambda raw: next(raw[key] for key in ALIASES["email"] if key in raw)  # noqa: E731
    assert any(raw_email(leads[i]) != raw_email(leads[j]) for i, j in repeats.items())  # case, whitespace
    filled = lambda raw: {k for k, v in asdict(normalize_lead(raw)).items() if v not in ("", None)}  # noqa: E731
    assert any(filled(leads[i]) - filled(leads[j]) for i, j in repeats.items())  # something to merge


def test_leads_look_like_clay_rows():
    leads = make_fake_leads(1000, rng=random.Random(5))
    keys = {key for raw in leads for key in raw}

    known = {key for aliases in ALIASES.values() for key in aliases} | set(EXTRA_COLUMNS)
    assert keys <= known
    assert {"firstName", "first_name", "First Name", "workEmail", "email"} <= keys  # styles are mixed
    employee_counts = [raw[key] for raw in leads for key in ALIASES["employee_count"] if raw.get(key)]
    assert any(isinstance(v, int) for v in employee_counts) and any("-" in str(v) for v in employee_counts)
    emails = [normalize_lead(raw).email for raw in leads if not _is_invalid(raw)]
    assert any(email.endswith("@gmail.com") for email in emails)
    assert sum("." in email.split("@")[0] for email in emails) > len(emails) / 4  # first.last@company


def test_column_styles_only_use_known_aliases():
    for style in COLUMN_STYLES.values():
        for field, keys in style.items():
            assert set(keys) <= set(ALIASES[field]), field


def test_shares_that_leave_nothing_to_duplicate_are_refused():
    assert plan_counts(20, 0.1, 0.05) == (2, 1)
    assert plan_counts(1, 0.1, 0.05) == (0, 0)
    with pytest.raises(ValueError, match="no original lead"):
        plan_counts(10, 0.5, 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        plan_counts(10, 1.5, 0)


def test_the_first_valid_lead_is_never_a_duplicate():
    for seed in range(50):
        leads = make_fake_leads(3, duplicates=0.34, invalid=0.34, rng=random.Random(seed))
        _, invalid, repeats = sort_out(leads)
        assert (len(repeats), len(invalid)) == (1, 1)


def _is_invalid(raw: dict) -> bool:
    try:
        normalize_lead(raw)
    except InvalidLead:
        return True
    return False
