"""Login throttling (django-axes) through the real admin login form: repeated wrong passwords for
one user from one address lock that pair out, even against the right password; the lock-out is
listed in the admin and lifted by a command."""
import io

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "the-right-password-123"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # 30 logins, not 30 s


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser("admin", "admin@example.com", PASSWORD)


def log_in(client: Client, password: str, username: str = "admin", **headers):
    return client.post(LOGIN, {"username": username, "password": password}, **headers)


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def fail_until_limit(client: Client, **headers) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = log_in(client, "wrong", **headers)
        assert response.status_code in (200, 429) and not logged_in(response)


def test_repeated_wrong_passwords_lock_the_user_out_even_with_the_right_one(admin_user):
    client = Client(REMOTE_ADDR="203.0.113.7")
    fail_until_limit(client)

    locked = log_in(client, PASSWORD)

    assert locked.status_code == 429 and "too many login attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_lock_out_is_per_user_and_address(admin_user):
    User.objects.create_user("other", password=PASSWORD, is_staff=True)
    fail_until_limit(Client(REMOTE_ADDR="203.0.113.7"))

    assert logged_in(log_in(Client(REMOTE_ADDR="198.51.100.2"), PASSWORD))  # the same user elsewhere
    assert logged_in(log_in(Client(REMOTE_ADDR="203.0.113.7"), PASSWORD, username="other"))


def test_fewer_failures_than_the_limit_do_not_lock_and_a_success_resets_the_count(admin_user):
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "wrong")
    assert logged_in(log_in(client, PASSWORD))
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "wrong")
    assert logged_in(log_in(client, PASSWORD))


def test_the_lock_out_is_listed_in_the_admin_and_lifted_by_a_command(admin_user):
    fail_until_limit(Client(REMOTE_ADDR="203.0.113.7"))

    other_admin = Client()
    other_admin.force_login(User.objects.create_superuser("root", password="x"))
    listing = other_admin.get("/admin/axes/accessattempt/").content.decode()
    assert "203.0.113.7" in listing and "admin" in listing

    out = io.StringIO()
    call_command("axes_reset_username", "admin", stdout=out)
    assert out.getvalue().strip() == "1 attempts removed."
    assert logged_in(log_in(Client(REMOTE_ADDR="203.0.113.7"), PASSWORD))


def test_behind_the_proxy_the_address_is_the_one_the_proxy_appended(admin_user, settings):
    settings.BEHIND_TLS_PROXY = True
    proxy = {"REMOTE_ADDR": "127.0.0.1"}
    # A client cannot escape its lock-out by sending its own X-Forwarded-For: only the last entry,
    # the one the proxy appended, counts.
    fail_until_limit(Client(**proxy), HTTP_X_FORWARDED_FOR="203.0.113.7")
    spoofing = log_in(Client(**proxy), PASSWORD, HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.7")
    assert spoofing.status_code == 429
    # Another client, behind the same proxy, is not locked out with it.
    assert logged_in(log_in(Client(**proxy), PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.2"))


def test_a_secret_typed_as_the_username_is_kept_redacted_in_the_login_records(client, admin_user):
    from axes.models import AccessAttempt, AccessFailureLog

    from tests.secret_samples import API_TOKEN

    log_in(client, "wrong", username=API_TOKEN)
    recorded = list(AccessAttempt.objects.values_list("username", flat=True)) + \
        list(AccessFailureLog.objects.values_list("username", flat=True))
    assert recorded and all(API_TOKEN not in (name or "") for name in recorded)
    page = Client()
    page.force_login(admin_user)
    assert API_TOKEN not in page.get("/admin/axes/accessattempt/").content.decode()
    # A real username is kept as typed, so a lock-out still names who it locks out.
    log_in(client, "wrong", username="jane@acme.io")
    assert AccessAttempt.objects.filter(username="jane@acme.io").exists()
