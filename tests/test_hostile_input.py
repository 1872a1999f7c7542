"""Generated hostile input against the patched /v1/memory operations (Schemathesis).

The five operations of the proxy's own OpenAPI document, with inputs Schemathesis derives from it
(valid ones and ones that break the schema), sent by authenticated callers of several teams
through the real proxy app. Every answer must not be a server error, must match the document
(the response schema of documented status codes, and the content type), and must carry nothing
of another team: a secret team's rows, seeded first, never show up, by value or by memory_id.

The app runs on its own event loop in a background thread (see conftest), so each generated
case is turned into request arguments (``Case.as_transport_kwargs``) and sent through that
loop; ``Case.validate_response`` checks the answer. Generation is derandomized, so every run
sends the same cases.
"""

from __future__ import annotations

import warnings

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from identity_auth import api_key
from litellm_memory_patch.routes import IDENTITY_NOT_STORABLE

EXAMPLES_PER_MODE = 40
OPERATIONS = [
    "POST /v1/memory",
    "GET /v1/memory",
    "GET /v1/memory/{key}",
    "PUT /v1/memory/{key}",
    "DELETE /v1/memory/{key}",
]
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
SECRET_TEAM = "team-secret"
MARKER = "MARKER-of-team-secret"
# Callers that must never see the secret team's rows; one of them shares its user.
CALLERS = [
    api_key(team="team-a", user="shared-user"),
    api_key(team="team-b", user="other-user"),
    api_key(user="shared-user"),
    api_key(team="team-b", user="shared-user", role="internal_user"),
    "anonymous",
]
# Keys a generator is likely to try.
SECRET_KEYS = ["0", "a", "secret"]


@pytest.fixture(scope="module")
def memory_schema(proxy_session):
    """The proxy's OpenAPI document, as the patched app describes it, cut to /v1/memory."""
    with warnings.catch_warnings():
        # LiteLLM's own routes make FastAPI and pydantic warn while the document is built.
        warnings.simplefilter("ignore")
        document = proxy_session.app.openapi()
    return schemathesis.openapi.from_dict(document).include(path_regex="^/v1/memory")


@pytest.fixture
def secrets(proxy):
    """The secret team's rows (keys a generator may well hit), owned by a user other teams share."""
    owner = api_key(team=SECRET_TEAM, user="shared-user")
    memory_ids = []
    for number, key in enumerate(SECRET_KEYS):
        body = {"key": key, "value": f"{MARKER}-{number}", "metadata": {"marker": MARKER}}
        answer = proxy.request("POST", "/v1/memory", key=owner, json=body)
        assert answer.status_code == 200, answer.text
        memory_ids.append(answer.json()["memory_id"])
    return memory_ids


def test_the_document_names_the_five_operations(memory_schema):
    labels = {result.ok().label for result in memory_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests(memory_schema, proxy, secrets, label, mode):
    operation = memory_schema.find_operation_by_label(label)
    sent = []

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), caller=st.sampled_from(CALLERS))
    def check(case, caller):
        assume(not _breaks_litellm_auth(case))
        arguments = case.as_transport_kwargs(base_url="http://proxy")
        headers = {
            name: value for name, value in arguments.pop("headers", {}).items() if name.lower() != "authorization"
        }
        response = proxy.request(
            arguments.pop("method"), arguments.pop("url"), key=caller, headers=headers, **_httpx(arguments)
        )
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)
        for secret in (MARKER, *secrets):
            assert secret not in response.text, (caller, response.text)

    check()
    print(f"{label} {mode.value}: {len(sent)} cases, statuses {sorted(set(sent))}")
    assert len(sent) >= EXAMPLES_PER_MODE // 2


def _breaks_litellm_auth(case) -> bool:
    """A JSON body that is not an object, on an operation with a path parameter: LiteLLM's own
    ``user_api_key_auth`` fails on it before any memory route runs (see the test below)."""
    return bool(case.path_parameters) and not isinstance(case.body, (dict, NotSet))


def test_litellm_auth_and_a_json_array_body_on_a_keyed_route(proxy):
    try:
        answer = proxy.request("PUT", "/v1/memory/k", key=CALLERS[0], json=[])
    except AttributeError:
        pytest.xfail(
            "LiteLLM's user_api_key_auth copies path parameters into the parsed body with"
            " dict.setdefault, so a JSON array body on a route with a path parameter raises there"
            " (a 500 on a real server) before the route runs; the same happens on LiteLLM's stock"
            " memory routes"
        )
    # LiteLLM 1.110.2's auth refuses such a body itself, before any route runs.
    assert answer.status_code == 400, answer.text


def _httpx(arguments: dict) -> dict:
    """Schemathesis' request arguments (made for ``requests``) in httpx's words."""
    arguments = dict(arguments)
    if "data" in arguments:
        arguments["content"] = arguments.pop("data")
    arguments.pop("cookies", None)
    return arguments


# -- what Python's JSON accepts and PostgreSQL does not (not among Schemathesis' defaults) --------

JSON = {"Content-Type": "application/json"}
LONE_SURROGATE = "\\ud800"  # as JSON text: a valid escape, no valid character
UNREPRESENTABLE = {
    "key": ("POST", "/v1/memory", '{"key": "k' + LONE_SURROGATE + '", "value": "v"}'),
    "value": ("PUT", "/v1/memory/k", '{"value": "v' + LONE_SURROGATE + '"}'),
    "metadata value": ("PUT", "/v1/memory/k", '{"value": "v", "metadata": {"a": "' + LONE_SURROGATE + '"}}'),
    "metadata key": ("POST", "/v1/memory", '{"key": "k", "value": "v", "metadata": {"' + LONE_SURROGATE + '": 1}}'),
    "NaN": ("PUT", "/v1/memory/k", '{"value": "v", "metadata": {"n": NaN}}'),
    "Infinity": ("POST", "/v1/memory", '{"key": "k", "value": "v", "metadata": [-Infinity]}'),
    "1e400": ("PUT", "/v1/memory/k", '{"value": "v", "metadata": {"n": {"deep": 1e400}}}'),
}


@pytest.mark.parametrize("case", UNREPRESENTABLE, ids=str)
def test_what_postgresql_cannot_store_is_a_4xx_and_writes_nothing(proxy, case):
    method, path, body = UNREPRESENTABLE[case]
    answer = proxy.request(method, path, key=CALLERS[0], content=body, headers=JSON)
    assert 400 <= answer.status_code < 500, answer.text
    listed = proxy.request("GET", "/v1/memory", key=CALLERS[0]).json()
    assert listed["total"] == 0


@pytest.mark.parametrize("field", ["team", "user"])
def test_an_overlong_identity_from_auth_is_a_4xx_not_an_outage(proxy, field):
    key = api_key(**{"team": "team-a", "user": "user-1", field: "x" * 1_000_000})
    for method, path, body in (
        ("POST", "/v1/memory", {"key": "k", "value": "v"}),
        ("PUT", "/v1/memory/k", {"value": "v"}),
        ("GET", "/v1/memory/k", None),
        ("GET", "/v1/memory", None),
    ):
        answer = proxy.request(method, path, key=key, json=body)
        assert answer.status_code != 503 and answer.status_code < 500, (method, path, answer.text)


@pytest.mark.parametrize("field", ["team", "user"])
def test_an_identity_with_nul_from_auth_is_a_400_naming_the_key(proxy, field):
    key = api_key(**{"team": "team-a", "user": "user-1", field: "a%00b"})
    for method, path, body in (
        ("POST", "/v1/memory", {"key": "k", "value": "v"}),
        ("PUT", "/v1/memory/k", {"value": "v"}),
        ("GET", "/v1/memory/k", None),
        ("GET", "/v1/memory", None),
        ("DELETE", "/v1/memory/k", None),
    ):
        answer = proxy.request(method, path, key=key, json=body)
        detail = IDENTITY_NOT_STORABLE.format(field=f"{field}_id")
        assert (answer.status_code, answer.json()["detail"]) == (400, detail), (method, path, answer.text)
    admin = api_key(user="admin", role="proxy_admin")
    assert proxy.request("GET", "/v1/memory", key=admin).json()["total"] == 0
