"""The exposure report's route verdicts against LiteLLM's own authentication.

The report judges, per key, whether LiteLLM lets it reach ``/v1/memory`` at all, from its owner's
role and its ``allowed_routes`` (``exposure.route_verdict``). Here the same keys are seeded into
LiteLLM's auth cache and sent to the real proxy with no ``custom_auth``: every request the verdict
says LiteLLM lets through must reach the memory handler, and every other one must be refused by
LiteLLM (401 or 403), shape by shape, on each tested version. Then the same on the demo's
database: the report's numbers there count a key only where LiteLLM lets it in.
"""

from __future__ import annotations

from importlib.metadata import version

from litellm_auth import MEMORY_ROUTES, litellm_auth  # noqa: F401

from conftest import create_database
from litellm_memory_patch import demo, exposure
from litellm_memory_patch.config import parse_database_url

# LiteLLM lets a viewer's GET through from 1.110 on; 1.83.14 refuses every memory call.
VIEWER_READS = tuple(int(part) for part in version("litellm").split(".")[:2]) >= (1, 110)
LIST = "/v1/memory"
NO_USER = "no user"  # a key without a user
NO_USER_ROW = "no user row"  # a key whose user has no row in LiteLLM's user table
OWNERS = (
    "proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer", NO_USER,
    NO_USER_ROW,
)
NAMED = "named entry"  # allowed_routes naming the probed entry's own path
ROUTE_SHAPES = (
    [], MEMORY_ROUTES, ["/v1/memory"], ["/v1/memory/*"], NAMED, ["llm_api_routes"],
    ["memory_routes"],  # a group no tested LiteLLM has
)


def lets_through(verdict: str, allowed_routes: list[str], method: str, path: str) -> bool:
    """What the verdict says LiteLLM does with one request of the key, for the probed entry."""
    if verdict == exposure.OPEN:
        return True
    if verdict == exposure.PARTIAL:
        return path != LIST
    if verdict == exposure.READS:
        # GETs only, within what the key's own allowed_routes let through.
        key_check = exposure.route_verdict(allowed_routes, exposure.ADMIN_ROLE)
        listed = path != LIST or key_check == exposure.OPEN
        return VIEWER_READS and method == "GET" and listed
    # Barred, or unknown: a group of another version, which no tested version has.
    return False


def probes(entry: str) -> list[tuple[str, str, dict | None]]:
    # The deletion comes before the creation, so that each probe's handler answer is a plain
    # 200 or 404 and only LiteLLM's refusals are 401 or 403.
    path = f"/v1/memory/{entry}"
    return [("GET", LIST, None), ("GET", path, None), ("DELETE", path, None),
            ("PUT", path, {"value": "probe"})]


def reached_handler(response) -> bool:
    return response.status_code not in (401, 403)


def test_route_verdicts_agree_with_litellm_auth_shape_by_shape(proxy, litellm_auth):
    litellm_auth.team("team-1")
    disagreements = []
    shape = 0
    for owner in OWNERS:
        for routes in ROUTE_SHAPES:
            shape += 1
            entry = f"team-1:shape-{shape}"
            allowed = [f"/v1/memory/{entry}"] if routes == NAMED else list(routes)
            user = None if owner == NO_USER else f"owner-{shape}"
            if owner not in (NO_USER, NO_USER_ROW):
                litellm_auth.user(user, owner, teams=("team-1",))
            key = litellm_auth.key(
                f"sk-shape-{shape}", user=user, team="team-1", allowed_routes=allowed
            )
            # The report reads no role for a key without a user or without a user row.
            role = owner if owner not in (NO_USER, NO_USER_ROW) else None
            verdict = exposure.route_verdict(allowed, role)
            for method, path, body in probes(entry):
                answer = proxy.request(method, path, key=key, json=body)
                if reached_handler(answer) != lets_through(verdict, allowed, method, path):
                    disagreements.append(
                        (owner, allowed, verdict, method, path, answer.status_code)
                    )
    assert shape == len(OWNERS) * len(ROUTE_SHAPES)
    assert disagreements == []


def test_exposure_of_the_demo_database_counts_what_litellm_auth_lets_in(
    proxy, litellm_auth, server_url, _template
):
    url = create_database(server_url, template=_template)
    demo.record_litellm_state(url)
    report = exposure.build_report(parse_database_url(url))
    proxy.call(demo.seed_litellm_auth)

    verdicts = {
        "sk-" + key["key"]: (key["routes"], key["allowed_routes"])  # alias: the key, no "sk-"
        for pair in report.pairs for key in pair.keys
    }
    reaching = {}
    for api_key, (verdict, allowed) in verdicts.items():
        entry = f"probe:{api_key}"
        expected = [
            lets_through(verdict, allowed, method, path) for method, path, _ in probes(entry)
        ]
        got = [
            reached_handler(proxy.request(method, path, key=api_key, json=body))
            for method, path, body in probes(entry)
        ]
        assert got == expected, (api_key, verdict)
        reaching[api_key] = any(got)
    for pair in report.pairs:
        # A pair's rows count as not barred exactly when LiteLLM lets one of its keys in.
        let_in = any(reaching["sk-" + key["key"]] for key in pair.keys)
        assert pair.rows_not_barred == (pair.rows_in_key_lifetime if let_in else 0), pair

    # Every demo key is in the report but the admin's key without a team, which reads every
    # entry with the patch too; LiteLLM refuses only the team-3 key.
    assert set(reaching) == set(demo.DEMO_KEYS) - {demo.ADMIN_KEY}
    assert [key for key, reaches in reaching.items() if not reaches] == [demo.TEAM_3_KEY]
    assert (report.rows_reached, report.rows_exposed_not_barred) == (3, 3)
