"""Every operation the OpenAPI document lists has a fuzz test generating requests for it."""
from resilience.openapi import document
from tests.fuzz import test_api_fuzz, test_endpoints_fuzz  # noqa: F401 - their @fuzzes marks fill FUZZED
from tests.fuzz.coverage import FUZZED
from tests.security.test_openapi import operations


def test_the_fuzz_covers_every_operation_of_the_openapi_document():
    assert len(operations()) == sum(len([m for m in item if m != "parameters"]) for item in document()["paths"].values())
    missing = set(operations()) - FUZZED
    assert not missing, f"operations no fuzz test sends requests to (mark the test with @fuzzes): {sorted(missing)}"
    assert FUZZED <= set(operations()), f"@fuzzes names what the document does not list: {FUZZED - set(operations())}"
