"""Which operations of the OpenAPI document (resilience/openapi.py) a fuzz test generates requests for:
tests/fuzz/test_coverage.py fails while one of them has no such test."""
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)
FUZZED: set[tuple[str, str]] = set()


def fuzzes(*operations: str) -> Callable[[F], F]:
    """@fuzzes("GET /metrics", "POST /api/webhooks/clay"): the test sends that method to that path."""

    def mark(test: F) -> F:
        for operation in operations:
            method, path = operation.split(" ", 1)
            FUZZED.add((method, path))
        return test

    return mark
