"""Lead normalisation and scoring: plain functions, no broker, no database."""
import pytest

from leads.services import InvalidLead, NormalizedLead, normalize_domain, normalize_email, normalize_lead, score_lead
from leads.validation import validate_batch
from workers.errors import PermanentError


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("  Jane.Doe@ACME.io ", "jane.doe@acme.io"),
        ("mailto:bob@example.com", "bob@example.com"),
        ("anna@bücher.de", "anna@xn--bcher-kva.de"),
    ],
)
def test_email_is_normalised(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["not-an-email", "jane@", "@acme.io", "jane@localhost", "jane doe@acme.io", "a@b.c"])
def test_invalid_email_is_a_permanent_error(raw):
    with pytest.raises(InvalidLead) as info:
        normalize_email(raw)
    assert isinstance(info.value, PermanentError)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("https://www.Acme.io/about?x=1", "acme.io"),
        ("acme.co.uk", "acme.co.uk"),
        ("http://shop.acme.io:8080", "shop.acme.io"),
        ("not a domain", ""),
        ("", ""),
    ],
)
def test_domain_is_normalised(raw, expected):
    assert normalize_domain(raw) == expected


def test_lead_fields_are_cleaned_and_aliases_understood():
    lead = normalize_lead({
        "workEmail": "JANE@Acme.io",
        "fullName": "  jane   o'neil ",
        "jobTitle": "VP   Sales",
        "companyName": "Acme",
        "companyWebsite": "https://www.acme.io/",
        "phoneNumber": "+1 (415) 555-0100",
        "linkedin": "linkedin.com/in/janeoneil/",
        "employeeCount": "51-200",
        "unknown_enrichment": {"kept": "in the raw payload only"},
    })
    assert lead == NormalizedLead(
        email="jane@acme.io", first_name="Jane", last_name="O'Neil", title="VP Sales", company="Acme",
        domain="acme.io", website="https://acme.io", phone="+14155550100",
        linkedin_url="https://www.linkedin.com/in/janeoneil", employee_count=51,
    )


def test_free_webmail_gives_no_company_domain():
    assert normalize_lead({"email": "jane@gmail.com"}).domain == ""


def test_mixed_case_names_are_kept_as_sent():
    assert normalize_lead({"email": "a@acme.io", "first_name": "McKenzie"}).first_name == "McKenzie"


def test_complete_senior_work_lead_scores_100():
    lead = NormalizedLead(email="ceo@acme.io", first_name="A", last_name="B", title="CEO", company="Acme",
                          domain="acme.io", phone="+1555000111", linkedin_url="https://www.linkedin.com/in/x",
                          employee_count=50)
    assert score_lead(lead) == 100


def test_rubric_parts():
    bare_work = NormalizedLead(email="jane@acme.io", domain="acme.io")
    assert score_lead(bare_work) == 20 + 10
    assert score_lead(NormalizedLead(email="jane@gmail.com")) == 5
    assert score_lead(NormalizedLead(email="info@acme.io", domain="acme.io")) == 20 - 10 + 10
    manager = NormalizedLead(email="jane@acme.io", title="Marketing Manager")
    director = NormalizedLead(email="jane@acme.io", title="Director of Ops")
    assert score_lead(director) - score_lead(manager) == 5
    assert score_lead(NormalizedLead(email="j@acme.io", employee_count=5000)) == 25
    assert score_lead(NormalizedLead(email="j@acme.io", employee_count=200)) == 35


def test_score_stays_within_0_and_100():
    assert score_lead(NormalizedLead(email="info@gmail.com")) == 0


def test_webhook_validation_names_each_bad_field():
    errors = validate_batch([
        {"email": "ok@acme.io"},
        {"email": 42, "first_name": ["x"]},
        {"first_name": "no email"},
        "a string",
        {"email": "x@acme.io", "employee_count": -3},
        {"email": "x@acme.io", "title": "t" * 201},
    ])
    assert [(e.index, e.field) for e in errors] == [
        (1, "email"), (1, "first_name"), (2, "email"), (3, ""), (4, "employee_count"), (5, "title"),
    ]
    assert errors[0].message == "must be a string, got a number"
    assert errors[2].message == "is required"
