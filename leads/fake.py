"""Realistic fake leads for trying the pipeline end to end (`manage.py generate_test_leads`).

The leads look like what Clay sends: field names vary from table to table (snake_case, camelCase,
column labels), optional columns are missing, null or empty, and some emails are on free webmail.
A planned share repeat an earlier lead's email (so processing merges them) and a planned share
have an email that passes the webhook's shape check but not processing (so they are
dead-lettered). Everything is drawn from the `rng` passed in, so a seed reproduces a batch.
"""
from __future__ import annotations

import math
import random
import unicodedata
from dataclasses import dataclass
from typing import Any

# --- small built-in word lists (no faker dependency) ---------------------------------------------

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Daniel", "Karen",
    "Priya", "Arjun", "Mei", "Wei", "Hiroshi", "Yuki", "Olga", "Dmitri", "Fatima", "Omar", "Chloé", "Lucas",
    "Sofía", "Mateo", "Zoë", "Liam", "Emma", "Noah", "Aoife", "Seán", "Ingrid", "Lars", "Amara", "Kwame",
    "Isabela", "João", "Hannah", "Felix", "Nadia", "Tomás",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Thompson",
    "White", "Harris", "Clark", "Lewis", "Walker", "Young", "O'Brien", "McDonald", "Patel", "Sharma", "Chen",
    "Wang", "Tanaka", "Suzuki", "Ivanova", "Petrov", "Haddad", "Okafor", "Mensah", "Müller", "Schmidt",
    "Dubois", "Lefèvre", "Rossi", "Jansen", "de Vries", "Andersson", "Nilsson", "Kowalski", "Silva",
)

# (seniority, titles): seniority only shapes the mix; the scoring reads the title itself.
TITLES = (
    ("executive", ("CEO", "Founder & CEO", "Co-Founder", "CTO", "CFO", "COO", "Chief Marketing Officer",
                   "President", "Managing Partner", "Owner")),
    ("director", ("VP of Sales", "VP Marketing", "Vice President, Engineering", "Director of Operations",
                  "Head of Growth", "Head of Marketing", "Director of Product", "Sales Director")),
    ("manager", ("Marketing Manager", "Engineering Manager", "Account Manager", "Product Manager",
                 "Team Lead, Customer Success", "Operations Manager", "Growth Lead")),
    ("individual", ("Account Executive", "Software Engineer", "Marketing Coordinator",
                    "Sales Development Representative", "Data Analyst", "Content Strategist", "Designer",
                    "Customer Success Specialist", "Recruiter")),
    ("junior", ("Marketing Intern", "Junior Analyst", "Sales Assistant", "Working Student")),
)
SENIORITY_WEIGHTS = (15, 20, 25, 30, 10)

INDUSTRIES = (
    "Computer Software", "Information Technology & Services", "Marketing & Advertising", "Financial Services",
    "Hospital & Health Care", "Real Estate", "Construction", "E-Learning", "Logistics & Supply Chain",
    "Retail", "Management Consulting", "Renewables & Environment", "Food & Beverages", "Legal Services",
)


@dataclass(frozen=True)
class Company:
    name: str
    domain: str
    industry: str
    employees: int


# Made-up companies; some share an industry, sizes span one-person shops to large firms.
COMPANIES = tuple(
    Company(name, domain, INDUSTRIES[industry], employees)
    for name, domain, industry, employees in (
        ("Acme Analytics", "acmeanalytics.io", 0, 48), ("Northwind Logistics", "northwindlogistics.com", 8, 1200),
        ("Bluefin Labs", "bluefinlabs.ai", 0, 23), ("Copperleaf Media", "copperleafmedia.co", 2, 75),
        ("Harbor & Pine Realty", "harborpine.com", 5, 14), ("Lumen Health Partners", "lumenhealth.org", 4, 3400),
        ("Quantra Capital", "quantracapital.com", 3, 260), ("Brightpath Learning", "brightpath.education", 7, 130),
        ("Stonebridge Builders", "stonebridgebuilders.com", 6, 410), ("Verdant Energy", "verdant-energy.de", 11, 88),
        ("Kettle & Crumb", "kettleandcrumb.co.uk", 12, 36), ("Ironclad Legal", "ironcladlegal.com", 13, 9),
        ("Pixelforge Studio", "pixelforge.studio", 2, 6), ("Orbital Systems", "orbitalsystems.io", 1, 640),
        ("Meridian Consulting Group", "meridiancg.com", 10, 95), ("Tidewater Retail", "tidewaterretail.com", 9, 5200),
        ("Nimbus Cloudworks", "nimbuscloud.io", 0, 310), ("Fjord Analytics", "fjordanalytics.no", 0, 42),
        ("Sunward Solar", "sunwardsolar.com.au", 11, 57), ("Cobalt Security", "cobaltsec.io", 1, 180),
        ("Maple Street Dental", "maplestreetdental.ca", 4, 12), ("Atlas Freight", "atlasfreight.nl", 8, 730),
        ("Greenline Grocers", "greenlinegrocers.com", 9, 2100), ("Helix Biotech", "helixbio.com", 4, 155),
        ("Sparrow Marketing", "sparrowmarketing.fr", 2, 19), ("Keystone Finance", "keystonefinance.co", 3, 64),
    )
)

# (country, calling code, cities); used for phones and the "location" column.
COUNTRIES = (
    ("United States", "1", ("San Francisco, CA", "Austin, TX", "New York, NY", "Chicago, IL")),
    ("United Kingdom", "44", ("London", "Manchester", "Edinburgh")),
    ("Germany", "49", ("Berlin", "Munich", "Hamburg")),
    ("Canada", "1", ("Toronto, ON", "Vancouver, BC")),
    ("Australia", "61", ("Sydney, NSW", "Melbourne, VIC")),
    ("France", "33", ("Paris", "Lyon")),
    ("Netherlands", "31", ("Amsterdam", "Rotterdam")),
    ("India", "91", ("Bengaluru", "Mumbai")),
    ("Brazil", "55", ("São Paulo", "Rio de Janeiro")),
    ("Norway", "47", ("Oslo",)),
)
COUNTRY_WEIGHTS = (40, 15, 10, 8, 6, 5, 5, 5, 4, 2)

FREE_WEBMAIL = ("gmail.com", "gmail.com", "gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com",
                "proton.me", "gmx.de")
EMPLOYEE_BANDS = ((1, 10), (11, 50), (51, 200), (201, 500), (501, 1000), (1001, 5000), (5001, 10000))

# --- how Clay tables name their columns: one alias per field, all of them listed in leads/fields.py ---

COLUMN_STYLES: dict[str, dict[str, tuple[str, ...]]] = {
    "snake_case": {
        "email": ("email", "work_email"), "first_name": ("first_name",), "last_name": ("last_name",),
        "full_name": ("full_name", "name"), "title": ("title", "job_title"), "company": ("company", "company_name"),
        "website": ("website", "company_website", "company_domain", "domain"),
        "phone": ("phone", "phone_number"), "linkedin_url": ("linkedin_url", "linkedin"), "industry": ("industry",),
        "employee_count": ("employee_count", "employees", "company_size"), "country": ("country", "location"),
    },
    "camelCase": {
        "email": ("email", "workEmail"), "first_name": ("firstName",), "last_name": ("lastName",),
        "full_name": ("fullName", "name"), "title": ("title", "jobTitle"), "company": ("company", "companyName"),
        "website": ("website", "companyWebsite", "companyDomain"), "phone": ("phone", "phoneNumber"),
        "linkedin_url": ("linkedinUrl", "linkedin"), "industry": ("industry",),
        "employee_count": ("employeeCount", "companySize", "employees"), "country": ("country", "location"),
    },
    "column labels": {
        "email": ("Email",), "first_name": ("First Name",), "last_name": ("Last Name",), "full_name": ("Full Name",),
        "title": ("Job Title",), "company": ("Company",), "website": ("website", "domain"), "phone": ("Phone",),
        "linkedin_url": ("LinkedIn",), "industry": ("Industry",), "employee_count": ("employees",),
        "country": ("Country",),
    },
}
STYLE_WEIGHTS = (45, 40, 15)
OPTIONAL_FIELDS = ("title", "company", "website", "phone", "linkedin_url", "industry", "employee_count", "country")
# Clay rows carry bookkeeping columns too; the pipeline ignores what it does not know.
EXTRA_COLUMNS = ("clay_row_id", "enrichment_provider")


def plan_counts(n: int, duplicates: float, invalid: float) -> tuple[int, int]:
    """(how many duplicates, how many invalid) for n leads; ValueError if the shares do not fit."""
    for label, share in (("duplicates", duplicates), ("invalid", invalid)):
        if not 0 <= share <= 1:
            raise ValueError(f"the {label} share must be between 0 and 1, got {share}")
    # Round half up: Python's round() would make 0.5 -> 0 and 2.5 -> 2.
    n_duplicates = math.floor(n * duplicates + 0.5)
    n_invalid = math.floor(n * invalid + 0.5)
    if n_duplicates + n_invalid > n or (n_duplicates and n_duplicates + n_invalid == n):
        raise ValueError(
            f"{n_duplicates} duplicate(s) and {n_invalid} invalid lead(s) leave no original lead among {n} "
            "for the duplicates to repeat: lower the share of duplicates or invalid leads"
        )
    return n_duplicates, n_invalid


@dataclass(frozen=True)
class _Person:
    first: str
    last: str
    title: str
    company: Company
    country: tuple[str, str, tuple[str, ...]]
    phone: str
    linkedin: str
    email: str  # as the original lead spelled it (its case may differ from later repeats)


def make_fake_leads(n: int, *, duplicates: float = 0.1, invalid: float = 0.05,
                    rng: random.Random | None = None) -> list[dict[str, Any]]:
    """n raw leads as Clay would post them, of which plan_counts(n, duplicates, invalid) repeat an
    earlier lead's email or carry an email that processing rejects."""
    return [lead for _, lead in make_fake_leads_with_kinds(n, duplicates=duplicates, invalid=invalid, rng=rng)]


def make_fake_leads_with_kinds(n: int, *, duplicates: float = 0.1, invalid: float = 0.05,
                               rng: random.Random | None = None) -> list[tuple[str, dict[str, Any]]]:
    """make_fake_leads, each lead with what it was made to be: "original", "duplicate" or "invalid"
    (make chaos checks that exactly the invalid ones are dead-lettered)."""
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    rng = rng or random.Random()
    n_duplicates, n_invalid = plan_counts(n, duplicates, invalid)
    kinds = ["original"] * (n - n_duplicates - n_invalid) + ["duplicate"] * n_duplicates + ["invalid"] * n_invalid
    rng.shuffle(kinds)
    _put_an_original_before_the_first_duplicate(kinds)

    used_emails: set[str] = set()
    originals: list[tuple[_Person, set[str]]] = []
    leads: list[tuple[str, dict[str, Any]]] = []
    for kind in kinds:
        if kind == "duplicate":
            person, had = rng.choice(originals)
            leads.append((kind, _render_repeat(person, had, rng)))
        elif kind == "invalid":
            person = _new_person(rng, used_emails=None)
            fields = _choose_fields(rng)
            leads.append((kind, _render(person, fields, rng, email=_broken_email(person, rng))))
        else:
            person = _new_person(rng, used_emails=used_emails)
            fields = _choose_fields(rng)
            originals.append((person, fields))
            leads.append((kind, _render(person, fields, rng, email=person.email)))
    return leads


def _put_an_original_before_the_first_duplicate(kinds: list[str]) -> None:
    # A duplicate needs an earlier lead to repeat; plan_counts guarantees there is an original somewhere.
    first_valid = next((i for i, kind in enumerate(kinds) if kind != "invalid"), None)
    if first_valid is not None and kinds[first_valid] == "duplicate":
        first_original = kinds.index("original")
        kinds[first_valid], kinds[first_original] = kinds[first_original], kinds[first_valid]


# --- people ----------------------------------------------------------------------------------------

def _ascii_slug(text: str) -> str:
    """'Chloé' -> 'chloe', "O'Brien" -> 'obrien', 'de Vries' -> 'devries': what mail admins do."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _new_person(rng: random.Random, *, used_emails: set[str] | None) -> _Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    _, titles = rng.choices(TITLES, weights=SENIORITY_WEIGHTS)[0]
    company = rng.choice(COMPANIES)
    country = rng.choices(COUNTRIES, weights=COUNTRY_WEIGHTS)[0]
    first_slug, last_slug = _ascii_slug(first), _ascii_slug(last)
    email = _unique_email(first_slug, last_slug, company.domain, rng, used_emails)
    return _Person(
        first=first,
        last=last,
        title=rng.choice(titles),
        company=company,
        country=country,
        phone=_phone(country[1], rng),
        linkedin=_linkedin(first_slug, last_slug, rng),
        email=email,
    )


def _unique_email(first: str, last: str, company_domain: str, rng: random.Random, used: set[str] | None) -> str:
    if rng.random() < 0.15:  # people sign up with their private address
        domain = rng.choice(FREE_WEBMAIL)
        local = rng.choice((f"{first}.{last}", f"{first}{last}{rng.randint(1, 99)}",
                            f"{first[0]}{last}{rng.randint(70, 99)}", f"{first}_{last}"))
    else:
        domain = company_domain
        local = rng.choice((f"{first}.{last}", f"{first}.{last}", first, f"{first[0]}{last}", f"{first}{last[0]}",
                            f"{first}_{last}"))
    email = f"{local}@{domain}"
    if used is not None:
        # Originals must not merge by accident, or the planned number of duplicates would be off.
        suffix = 2
        while email in used:
            email = f"{local}{suffix}@{domain}"
            suffix += 1
        used.add(email)
    if rng.random() < 0.1:  # some sources keep the case people typed
        local_part, _, domain_part = email.partition("@")
        email = f"{local_part.title()}@{domain_part.capitalize()}"
    return email


def _phone(calling_code: str, rng: random.Random) -> str:
    number = f"{rng.randint(200, 989)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    if calling_code == "1":
        return rng.choice((f"+1 {number}", f"({number[:3]}) {number[4:7]}-{number[8:]}",
                           f"+1-{number.replace(' ', '-')}"))
    return rng.choice((f"+{calling_code} {number}", f"00{calling_code} {number}",
                       f"+{calling_code}{number.replace(' ', '')}"))


def _linkedin(first: str, last: str, rng: random.Random) -> str:
    handle = rng.choice((f"{first}-{last}", f"{first}{last}", f"{first}-{last}-{rng.randrange(16**6):06x}"))
    return rng.choice((f"https://www.linkedin.com/in/{handle}", f"linkedin.com/in/{handle}/",
                       f"https://linkedin.com/in/{handle}?trk=clay"))


def _broken_email(person: _Person, rng: random.Random) -> str:
    """An email the webhook accepts (a non-empty string) that normalize_lead rejects."""
    first, last = _ascii_slug(person.first), _ascii_slug(person.last)
    slug = person.company.domain.split(".")[0]
    return rng.choice((
        f"{first}.{last}@",  # the domain column was empty when Clay built the address
        f"{first}.{last}@{slug}",  # no top-level domain
        f"{first}..{last}@{person.company.domain}",
        f"{person.first} {person.last}@{person.company.domain}",
        f"@{person.company.domain}",
        "not-an-email",
        "N/A",  # what enrichment writes when it found nothing
        "No email found",
    ))


# --- rendering a person as a Clay row --------------------------------------------------------------

def _choose_fields(rng: random.Random) -> set[str]:
    """Which optional columns this row has filled: enrichment finds more for some people than others."""
    completeness = rng.choices(("rich", "typical", "sparse"), weights=(45, 40, 15))[0]
    if completeness == "rich":
        return set(OPTIONAL_FIELDS)
    if completeness == "typical":
        return {"title", "company"} | {name for name in OPTIONAL_FIELDS if rng.random() < 0.5}
    return {name for name in ("company",) if rng.random() < 0.5}


def _render(person: _Person, fields: set[str], rng: random.Random, *, email: str) -> dict[str, Any]:
    style = COLUMN_STYLES[rng.choices(list(COLUMN_STYLES), weights=STYLE_WEIGHTS)[0]]
    column = lambda field: rng.choice(style[field])  # noqa: E731
    row: dict[str, Any] = {column("email"): email}
    if rng.random() < 0.2:
        row[column("full_name")] = f"{person.first} {person.last}"
    else:
        first, last = person.first, person.last
        if rng.random() < 0.1:  # a hand-typed sheet in capitals
            first, last = first.upper(), last.upper()
        row[column("first_name")] = first
        row[column("last_name")] = last
    for field in OPTIONAL_FIELDS:
        key = column(field)
        if field in fields:
            row[key] = _value(person, field, key, rng)
        elif rng.random() < 0.3:
            row[key] = rng.choice((None, None, ""))  # Clay sends empty enrichment columns as null or ""
    if rng.random() < 0.3:
        row[EXTRA_COLUMNS[0]] = f"row_{rng.randrange(16**10):010x}"
    if rng.random() < 0.2:
        row[EXTRA_COLUMNS[1]] = rng.choice(("apollo", "clearbit", "people-data-labs", "hunter"))
    return row


def _value(person: _Person, field: str, key: str, rng: random.Random) -> Any:
    company = person.company
    if field == "title":
        return person.title
    if field == "company":
        return company.name
    if field == "website":
        if key in ("company_domain", "companyDomain", "domain"):
            return company.domain
        return rng.choice((f"https://www.{company.domain}", f"https://{company.domain}/", f"www.{company.domain}",
                           f"http://{company.domain}"))
    if field == "phone":
        return person.phone
    if field == "linkedin_url":
        return person.linkedin
    if field == "industry":
        return company.industry
    if field == "employee_count":
        return _employee_count(company.employees, rng)
    if field == "country":
        name, _, cities = person.country
        return f"{rng.choice(cities)}, {name}" if key == "location" else name
    raise AssertionError(f"no fake value for {field}")


def _employee_count(employees: int, rng: random.Random) -> int | str:
    """An int, a numeric string, or a LinkedIn size band like '51-200'."""
    form = rng.random()
    if form < 0.35:
        return employees
    if form < 0.5:
        return str(employees)
    band = next((f"{low:,}-{high:,}" for low, high in EMPLOYEE_BANDS if low <= employees <= high), "10,001+")
    return band if rng.random() < 0.7 else f"{band} employees"


def _render_repeat(person: _Person, had: set[str], rng: random.Random) -> dict[str, Any]:
    """The same person again from another table: the email spelled differently, and columns the
    first row lacked now filled (so merging has something to add)."""
    email = person.email
    variant = rng.random()
    if variant < 0.3:
        email = email.upper()
    elif variant < 0.5:
        email = email.lower().capitalize()
    if rng.random() < 0.4:
        email = rng.choice((" ", "  ", "\t")) + email + rng.choice(("", " ", "\n"))
    missing = [name for name in OPTIONAL_FIELDS if name not in had]
    extra = set(rng.sample(missing, k=rng.randint(1, len(missing)))) if missing else set()
    kept = {name for name in had if rng.random() < 0.6}
    return _render(person, kept | extra, rng, email=email)
