"""Property-based fuzzing of every service's HTTP API from its own OpenAPI schema
(schemathesis), against the running stack with valid credentials: no answer is a 500, and
every answer conforms to the schema (status code, content type, body, headers).

Bounded (a few examples per operation) so the whole run stays well under a minute."""

import asyncio

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations that change the world in ways the rest of the session should not see.
SKIPPED = {("POST", "/v1/receivers/{name}/test")}


def _fuzz(base_url: str, schema_dict: dict, headers: dict) -> list[str]:
    schema = schemathesis.openapi.from_dict(schema_dict)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=15)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as error:  # collect every operation's first failure
            failures.append(f"{operation.method.upper()} {operation.path}: {error}"[:3000])
    return failures


@pytest.mark.parametrize("service", ["ingest", "scoring", "triggers", "notifier"])
async def test_api_answers_conform_to_its_schema(stack, service):
    base_url = stack.urls[service]
    async with httpx.AsyncClient() as client:
        schema_dict = (await client.get(f"{base_url}/openapi.json")).json()
    token = stack.ingest_key if service == "ingest" else stack.api_token
    failures = await asyncio.to_thread(
        _fuzz, base_url, schema_dict, {"Authorization": f"Bearer {token}"}
    )
    assert not failures, "\n\n".join(failures)
