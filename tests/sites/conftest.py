from decimal import Decimal

import pytest

from fakes.anthropic import FakeAnthropic

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


def paid_request(*, model: str = "claude-3-haiku-20240307", site=None, input_tokens: int = 2000,
                 output_tokens: int = 500, cost: str = "0.001125", outcome: str = "valid", mock: bool = False, **fields):
    """A row of the books as a worker writes it when an answer arrives (other pools' and hosts' included)."""
    from sites.models import AiRequest

    return AiRequest.objects.create(model=model, site=site, input_tokens=input_tokens, output_tokens=output_tokens,
                                    cost_usd=Decimal(cost), outcome=outcome, mock=mock, **fields)
