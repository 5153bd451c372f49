"""The OpenAPI document and /docs (issue 12, "small ones"): no dangling reference, every error
documented in the shape the API answers, /metrics as text, Swagger UI from this origin only."""

from __future__ import annotations

import re
from typing import Any

from srvtest.app import Api


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_every_reference_resolves_issue_12(sqlite_api: Api) -> None:
    document = sqlite_api.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    refs = set(_refs(document))
    assert "#/components/schemas/RegistrySubmissionIn" in refs
    dangling = [ref for ref in refs if ref.removeprefix("#/components/schemas/") not in schemas]
    assert dangling == []
    assert "HTTPValidationError" not in schemas


def test_errors_are_documented_in_the_api_shape_issue_12(sqlite_api: Api) -> None:
    document = sqlite_api.client.get("/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
            if "requestBody" in operation:
                assert "413" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == error_ref, (
                        method,
                        path,
                        status,
                    )
    create = document["paths"]["/api/v1/submissions"]["post"]["responses"]
    assert {"400", "408", "409", "413", "422", "429"} <= set(create)
    assert set(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_an_unknown_path_and_a_bad_json_body_answer_in_the_api_shape(sqlite_api: Api) -> None:
    missing = sqlite_api.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_docs_load_nothing_from_elsewhere_issue_12(sqlite_api: Api) -> None:
    page = sqlite_api.client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") for s in sources)
    assert "<script>" not in page.text  # no inline script: CSP would block it
    for source in sources:
        asset = sqlite_api.client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
        assert asset.headers["content-security-policy"] == csp
    assert "/openapi.json" in sqlite_api.client.get("/docs/assets/start.js").text
    assert sqlite_api.client.get("/docs/assets/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert sqlite_api.client.get("/redoc").status_code == 404
