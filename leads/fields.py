"""The lead fields we understand and the names sources send them under (Clay columns vary)."""
from __future__ import annotations

# canonical name -> accepted input keys, first match wins
ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "work_email", "workEmail", "Email"),
    "first_name": ("first_name", "firstName", "First Name"),
    "last_name": ("last_name", "lastName", "Last Name"),
    "full_name": ("full_name", "fullName", "name", "Full Name"),
    "title": ("title", "job_title", "jobTitle", "Job Title"),
    "company": ("company", "company_name", "companyName", "Company"),
    "website": ("website", "company_website", "companyWebsite", "company_domain", "companyDomain", "domain"),
    "phone": ("phone", "phone_number", "phoneNumber", "Phone"),
    "linkedin_url": ("linkedin_url", "linkedinUrl", "linkedin", "LinkedIn"),
    "industry": ("industry", "Industry"),
    "employee_count": ("employee_count", "employeeCount", "employees", "company_size", "companySize"),
    "country": ("country", "location", "Country"),
}

MAX_LENGTH: dict[str, int] = {
    "email": 254, "first_name": 100, "last_name": 100, "full_name": 200, "title": 200, "company": 200,
    "website": 500, "phone": 40, "linkedin_url": 500, "industry": 200, "employee_count": 40, "country": 100,
}

# The largest count the leads table holds (a PostgreSQL integer); anything above is not a company size.
EMPLOYEE_COUNT_MAX = 2_147_483_647

# employee_count as text, the way sources write a company's size: a count ("1200", "1,200"), a LinkedIn band
# ("51-200", "1,001-5,000", "10,001+"), either followed by "employees"; blank means not known. At most nine
# digits a count, so every count it allows fits the column. The webhook refuses any other text with a 400
# naming the field, and resilience/openapi.py declares this same pattern: written for both Python's re
# (fullmatch) and JSON Schema's ECMA-262 regexes, so ASCII classes only ([0-9], not \d).
_COUNT = r"(?:[0-9]{1,9}|[0-9]{1,3}(?:,[0-9]{3}){1,2})"
EMPLOYEE_COUNT_PATTERN = rf"^ *(?:{_COUNT} *(?:(?:-|\u2013|to) *{_COUNT}|\+)? *(?:[Ee]mployees)? *)?$"

# The characters str.strip() removes: an email made of them only is blank. Spelled out so that the
# document's pattern (ECMA-262's \s is another set) and the webhook's check are the same.
WHITESPACE = "\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = f"[^{WHITESPACE}]"


def pick(item: dict, field: str) -> tuple[str | None, object]:
    """(the key the item used for `field`, its value), or (None, None) if absent."""
    for key in ALIASES[field]:
        if key in item:
            return key, item[key]
    return None, None
