import pytest
from django.test import Client

from access.auth import Scope, create_token


@pytest.fixture
def token_client(db) -> Client:
    """A client with a token that may do everything (every scope)."""
    _, secret = create_token("fuzz", scopes=Scope.values)
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
