"""Checks /api/v1/openapi.json with an independent validator (openapi-spec-validator), and
that every operation it lists answers (anything but 404 for an unknown route or 405).

Usage: python3 ci/check_openapi.py HTTP_URL ADMIN_KEY
"""

import json
import sys
import urllib.error
import urllib.request

from openapi_spec_validator import validate


def call(url: str, key: str, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            # A Server-Sent Events stream never ends: its status and type are the answer.
            if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                return response.status, b""
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main() -> None:
    base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    status, body = call(f"{base}/api/v1/openapi.json", key)
    assert status == 200, status
    document = json.loads(body)
    validate(document)
    unauthenticated = urllib.request.Request(f"{base}/api/v1/openapi.json")
    try:
        urllib.request.urlopen(unauthenticated)
        raise AssertionError("openapi.json answered without a key")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code
    operations = 0
    for path, methods in document["paths"].items():
        for method in methods:
            operations += 1
            if method != "get":
                continue
            concrete = path.replace("{id}", "ref.wilayah").replace("{name}", "tidak_ada")
            concrete = concrete.replace("{number}", "1").replace("{version}", "1.0.0")
            concrete = concrete.replace("{file}", "data.csv")
            status, body = call(f"{base}{concrete}", key)
            problem = body.decode(errors="replace")
            # A route that does not exist gets axum's plain 404 (no body) or 405. A route that
            # exists says why it found nothing: a problem for the API, a page for the portal.
            assert status != 405, (path, status)
            explained = "problem" in problem or "detail" in problem or "<main" in problem
            assert status != 404 or explained, (path, status, problem)
    print(f"openapi.json: valid OpenAPI {document['openapi']}, {operations} operations, every GET answers")


if __name__ == "__main__":
    main()
