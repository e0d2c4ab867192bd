"""GET /api/openapi.json describes the whole HTTP API: every URL pattern under api/ (and /metrics,
/healthz) with exactly the methods its view serves. A new endpoint that is not described fails here,
and tests/fuzz/test_coverage.py fails until it is fuzzed."""
import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from access.auth import create_token
from resilience.openapi import document

pytestmark = pytest.mark.django_db
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Outside api/, yet part of the HTTP API machines call.
OTHER_API_PATHS = {"/metrics", "/healthz"}


def url_patterns(resolver: URLResolver = None, prefix: str = "") -> list[str]:
    """Every route of the URLconf, as an OpenAPI path ('/api/admin/leads/{lead_id}/deliver')."""
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes += url_patterns(entry, route)
        elif isinstance(entry, URLPattern):
            routes.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


# Machines post there too: the email providers' signed webhooks.
OTHER_API_PREFIXES = ("/api/", "/email/events/")


def api_routes() -> set[str]:
    return {route for route in url_patterns() if route.startswith(OTHER_API_PREFIXES) or route in OTHER_API_PATHS}


def operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation the document lists."""
    return [(method.upper(), path) for path, item in document()["paths"].items() for method in item if method in METHODS]


def concrete(path: str) -> str:
    return path.replace("{lead_id}", "1").replace("{provider}", "postmark")


def test_every_api_url_pattern_is_described_and_nothing_else():
    assert api_routes() >= {"/api/webhooks/clay", "/api/admin/dead-letter-queue", "/metrics",
                            "/email/events/{provider}/"}  # the walk works
    assert set(document()["paths"]) == api_routes()


@pytest.mark.parametrize("path", sorted(document()["paths"]))
def test_each_path_serves_exactly_the_methods_described(path):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('spec')[1]}")
    response = client.generic("TRACE", concrete(path))
    assert response.status_code == 405, response.content
    served = {method for method in response["Allow"].split(", ") if method != "HEAD"}
    described = {method for method, described_path in operations() if described_path == path}
    assert served == described, (path, served, described)


def test_operations_are_named_once_and_answer_errors_as_json():
    ids = [item[method]["operationId"] for item in document()["paths"].values() for method in item if method in METHODS]
    assert len(ids) == len(set(ids)) == len(operations())
    for method, path in operations():
        responses = document()["paths"][path][method.lower()]["responses"]
        assert any(code.startswith("2") for code in responses), (method, path)
        for code, answer in responses.items():
            if code.startswith("4"):
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_document_is_served_to_tokens_and_staff_only(client, django_user_model):
    assert client.get("/api/openapi.json").status_code == 401
    client.force_login(django_user_model.objects.create_user("visitor", password="x"))
    assert client.get("/api/openapi.json").status_code == 403
    reader = Client(HTTP_AUTHORIZATION=f"Bearer {create_token('reader')[1]}")
    response = reader.get("/api/openapi.json")
    assert response.status_code == 200 and response.json() == document()
    assert response.json()["openapi"].startswith("3.1")
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("staffer", password="x", is_staff=True))
    assert staff.get("/api/openapi.json").status_code == 200  # no model permission needed


def test_every_reference_resolves_and_every_path_parameter_is_declared():
    spec = document()

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(spec):
        target = spec
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]  # KeyError: a reference to nothing
    for path, item in spec["paths"].items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{(\w+)\}", path)), path
        for method in (m for m in item if m in METHODS):
            for scheme in item[method]["security"]:
                assert set(scheme) <= set(spec["components"]["securitySchemes"]), (path, method)


def test_each_admin_operation_names_the_scope_a_token_needs():
    spec = document()
    by_id = {op["operationId"]: op for item in spec["paths"].values() for m, op in item.items() if m in METHODS}
    expected = {"listDeadLetters": "read", "resolveDeadLetter": "dlq", "deleteDeadLetter": "dlq",
                "requeueDeadLetter": "dlq", "readDelivery": "read", "startDelivery": "deliver",
                "workersHealth": "read", "openapi": "read", "metrics": "read"}
    assert {name: op.get("x-required-scope") for name, op in by_id.items() if name in expected} == expected
    for name, scope in expected.items():
        assert by_id[name]["security"] == [{"bearerToken": [scope]}, {"staffSession": []}], name
        assert f"API token with the scope `{scope}`" in by_id[name]["description"], name
    assert "`dlq.change_deadletter`" in by_id["requeueDeadLetter"]["description"]
    # The public and signed operations name no token scope.
    assert all("x-required-scope" not in by_id[name] for name in ("clayWebhook", "healthz", "emailProviderEvents"))
