"""``litellm-memory-patch verify``: check from outside that a running proxy refuses cross-team access.

The operator gives the proxy's URL and two keys of different teams that may call ``/v1/memory``.
The first key creates one entry under a random name; the second key then tries every road of
LiteLLM issue #27722 to it (read, list, search, overwrite, delete) and must get the answers of an
entry that does not exist (404, an empty list, 409 for a create on a taken key); the first key
then reads its entry back unchanged and deletes it, whatever happened before, so nothing is left
behind. Only the standard library talks HTTP: the command needs nothing the proxy's host lacks.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

PATCH_HEADER = "X-LiteLLM-Memory-Patch"
TIMEOUT_SECONDS = 30
KEY_PREFIX = "litellm-memory-patch-verify-"

UNREACHABLE = "cannot reach the proxy at {url} ({reason}); check --proxy-url"
CANNOT_CREATE = (
    "the first key could not create an entry (HTTP {status}: {body}); give a key that may call"
    " /v1/memory (a proxy admin's, or one whose allowed_routes name /v1/memory and /v1/memory/*)"
)


class VerifyError(Exception):
    """The check could not run at all; the message says what to fix."""


@dataclass(frozen=True)
class Step:
    what: str
    wanted: str
    got: str
    ok: bool


@dataclass(frozen=True)
class Answer:
    status: int
    body: object
    patched: str | None


class _Proxy:
    def __init__(self, url: str) -> None:
        self._url = url.rstrip("/")

    def request(self, method: str, path: str, key: str, *, body=None, query=None) -> Answer:
        url = self._url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return _answer(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as error:
            return _answer(error.code, error.read(), error.headers)
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise VerifyError(UNREACHABLE.format(url=self._url, reason=reason)) from None


def _answer(status: int, raw: bytes, headers) -> Answer:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        body = raw.decode(errors="replace")
    return Answer(status, body, headers.get(PATCH_HEADER))


def _entries(answer: Answer) -> list:
    return answer.body.get("memories", []) if isinstance(answer.body, dict) else []


def run(proxy_url: str, key_1: str, key_2: str) -> list[Step]:
    """Every step, in order; the entry is deleted again whatever the steps found."""
    proxy = _Proxy(proxy_url)
    name = KEY_PREFIX + secrets.token_hex(8)
    value = secrets.token_hex(16)
    path = "/v1/memory/" + urllib.parse.quote(name, safe="")
    created = proxy.request("POST", "/v1/memory", key_1, body={"key": name, "value": value})
    if created.status != 200:
        raise VerifyError(CANNOT_CREATE.format(status=created.status, body=str(created.body)[:200]))
    steps = [
        Step("the patch answers", f"header {PATCH_HEADER}", created.patched or "no header",
             created.patched is not None),
    ]
    try:
        read = proxy.request("GET", path, key_2)
        steps.append(Step("key 2 reads key 1's entry", "404", str(read.status), read.status == 404))
        listed = proxy.request("GET", "/v1/memory", key_2, query={"key": name})
        steps.append(Step("key 2 lists it by key", "200, no entry", _listed(listed),
                          listed.status == 200 and not _entries(listed)))
        searched = proxy.request("GET", "/v1/memory", key_2, query={"key_prefix": KEY_PREFIX})
        steps.append(Step("key 2 lists it by prefix", "200, none of it", _listed(searched),
                          searched.status == 200
                          and all(entry.get("key") != name for entry in _entries(searched))))
        overwrite = proxy.request("PUT", path, key_2, body={"value": "overwritten by verify"})
        steps.append(Step("key 2 overwrites it", "409", str(overwrite.status), overwrite.status == 409))
        deleted = proxy.request("DELETE", path, key_2)
        steps.append(Step("key 2 deletes it", "404", str(deleted.status), deleted.status == 404))
        own = proxy.request("GET", path, key_1)
        unchanged = own.status == 200 and isinstance(own.body, dict) and own.body.get("value") == value
        steps.append(Step("key 1 reads it back", "200, unchanged", str(own.status), unchanged))
    finally:
        removed = proxy.request("DELETE", path, key_1)
    steps.append(Step("key 1 deletes it", "200", str(removed.status), removed.status == 200))
    return steps


def _listed(answer: Answer) -> str:
    return f"{answer.status}, {len(_entries(answer))} entries"


def format_steps(steps: list[Step]) -> str:
    """The steps as aligned text, then the verdict."""
    ok = all(step.ok for step in steps)
    width = max(len(step.what) for step in steps)
    verdict = (
        "cross-team access refused, nothing left behind" if ok
        else "see the failing lines (two keys of one team, or a key of no team, also fail)"
    )
    rows = [(step.what, step.ok, f"wanted {step.wanted}, got {step.got}") for step in steps]
    rows.append(("overall", ok, verdict))
    return "\n".join(
        f"{what:<{width}}  {'OK' if passed else 'FAIL':<4}  {detail}" for what, passed, detail in rows
    )
