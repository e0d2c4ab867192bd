import pytest

from tests.sites.fake_anthropic import FakeAnthropic

TEST_KEY = "sk-ant-api03-test-key-never-shown-0123456789"


@pytest.fixture
def fake_api(settings):
    """The fake API, and settings that send the real client to it (MOCK_MODE off, a test key)."""
    fake = FakeAnthropic().start()
    settings.MOCK_MODE = False
    settings.ANTHROPIC_API_KEY = TEST_KEY
    settings.ANTHROPIC_BASE_URL = fake.url
    settings.ANTHROPIC_TIMEOUT_SECONDS = 5.0
    yield fake
    fake.stop()
