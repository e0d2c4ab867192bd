"""Browser tests: Debian's headless Chromium driven by Playwright, against pytest-django's live_server.

Playwright never downloads a browser here (`playwright install` needs hosts the network does not
reach): it launches /usr/bin/chromium, which deploy/run-tests.sh installs with apt-get when it runs
as root. Without it every browser test is skipped, saying how to install it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
STAFF_USERNAME = "dashboard-staff"
STAFF_PASSWORD = "a-long-test-password-1"


@pytest.fixture(scope="module")
def browser() -> Iterator["playwright.sync_api.Browser"]:  # noqa: F821
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (as root: apt-get install -y chromium; "
                    "make test does it when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: .venv/bin/pip install -r requirements.txt")
    # Playwright's sync API keeps an asyncio loop in this thread, and Django refuses ORM calls
    # wherever a loop exists. The test code is synchronous and the live server has its own thread,
    # so the check is lifted only while these tests' browser is open.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US", timezone_id="UTC")
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # checked by tests: the dashboard's script must not throw
    return page


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(STAFF_USERNAME, password=STAFF_PASSWORD, is_staff=True,
                                                 is_superuser=True)


def log_in(page, live_server, next_path: str = "/admin/workers/") -> None:
    """Through the real admin login form, as a person would."""
    page.goto(f"{live_server.url}{next_path}")
    page.wait_for_url("**/admin/login/**")
    page.fill("#id_username", STAFF_USERNAME)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
