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


def pick(item: dict, field: str) -> tuple[str | None, object]:
    """(the key the item used for `field`, its value), or (None, None) if absent."""
    for key in ALIASES[field]:
        if key in item:
            return key, item[key]
    return None, None
