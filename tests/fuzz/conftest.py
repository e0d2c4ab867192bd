import pytest
from django.test import Client

from access.auth import create_token


@pytest.fixture
def token_client(db) -> Client:
    """A client with a token that may write."""
    _, secret = create_token("fuzz")
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
