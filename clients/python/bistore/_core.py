"""What Client and AsyncClient share: each endpoint as a Call, and the retry
state machine that turns attempts into a result or a typed error. Neither
does any I/O; the two clients only send and sleep."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from bistore._errors import BistoreError, OutcomeUnknown, Unavailable, error_from_response
from bistore._retry import (NOT_SENT, RetryPolicy, Safety, retry_after_seconds, retryable_exception,
                            retryable_status)
from bistore._transaction import new_idempotency_key
from bistore._types import Json, PropertyValue, Readiness

__version__ = "0.1.0"
USER_AGENT = f"bistore-client-python/{__version__}"

_NO_BODY = object()


@dataclass
class Call:
    """One logical call: sent once, and again on retries, byte for byte the same."""

    method: str
    path: str
    safety: Safety = Safety.IDEMPOTENT
    params: dict[str, str] = field(default_factory=dict)
    body: Any = _NO_BODY
    headers: dict[str, str] = field(default_factory=dict)
    expect: tuple[int, ...] = (200,)
    idempotency_key: str | None = None

    def content(self) -> bytes | None:
        if self.body is _NO_BODY:
            return None
        return json.dumps(self.body, separators=(",", ":")).encode()

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.body is not _NO_BODY:
            headers["Content-Type"] = "application/json"
        if self.idempotency_key is not None:
            headers["Idempotency-Key"] = self.idempotency_key
        return headers


def seg(value: str) -> str:
    """A path segment, percent-encoded whole (an id with '/' stays one segment)."""
    if not isinstance(value, str):
        raise TypeError(f"an id must be a string, not {type(value).__name__}")
    return quote(value, safe="")


def post(path: str, body: Any, *, key: str | None, expect: tuple[int, ...] = (200,),
         safety: Safety = Safety.IDEMPOTENT) -> Call:
    """Every POST carries an Idempotency-Key: the caller's, or a fresh one per call."""
    return Call("POST", path, safety, body=body, expect=expect,
                idempotency_key=key or new_idempotency_key())


def delete(path: str, key: str | None, headers: dict[str, str] | None = None) -> Call:
    """A DELETE with an Idempotency-Key: the caller's, or a fresh one per call."""
    return Call("DELETE", path, Safety.DELETE, headers=headers or {}, expect=(204,),
                idempotency_key=key or new_idempotency_key())


def if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": f'"{version}"'}


def opt(**items: Any) -> dict[str, str]:
    """Query parameters, the None ones left out, booleans as true/false."""
    out: dict[str, str] = {}
    for k, v in items.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def entity_body(type: str, properties: Mapping[str, PropertyValue] | None, id: str | None,
                metadata: Mapping[str, Json] | None) -> dict[str, Json]:
    body: dict[str, Json] = {"type": type}
    if id is not None:
        body["id"] = id
    if properties is not None:
        body["properties"] = dict(properties)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


def relationship_body(type: str, source: str, target: str,
                      properties: Mapping[str, PropertyValue] | None,
                      id: str | None) -> dict[str, Json]:
    body: dict[str, Json] = {"type": type, "source": source, "target": target}
    if id is not None:
        body["id"] = id
    if properties is not None:
        body["properties"] = dict(properties)
    return body


def patch_body(properties: Mapping[str, PropertyValue] | None,
               metadata: Mapping[str, Json] | None) -> dict[str, Json]:
    body: dict[str, Json] = {}
    if properties is not None:
        body["properties"] = dict(properties)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


@dataclass
class Done:
    value: Any


@dataclass
class Retry:
    delay: float


class Attempts:
    """The retry state of one Call. Feed it each attempt's exception or
    response; it answers Done(value), Retry(delay), or raises the typed error."""

    def __init__(self, call: Call, policy: RetryPolicy) -> None:
        self.call = call
        self.policy = policy
        self.tries = 0
        self.maybe_applied = False  # an earlier attempt may have reached the stores

    def _left(self) -> bool:
        return self.tries < self.policy.attempts

    def on_exception(self, exc: Exception) -> Retry:
        self.tries += 1
        sent = not isinstance(exc, NOT_SENT)
        if sent:
            self.maybe_applied = True
        if self._left() and retryable_exception(self.call.safety, exc):
            return Retry(self.policy.delay(self.tries))
        what = f"{self.call.method} {self.call.path}"
        if self.call.method != "GET" and self.maybe_applied:
            raise OutcomeUnknown(
                f"{what}: no answer after {self.tries} attempt(s) ({type(exc).__name__}: {exc}); "
                "it may have been applied" +
                ("; repeat it with the same idempotency_key to learn the outcome"
                 if self.call.idempotency_key else ""),
                idempotency_key=self.call.idempotency_key) from exc
        raise Unavailable(f"{what}: the gateway could not be reached after {self.tries} "
                          f"attempt(s) ({type(exc).__name__}: {exc})",
                          code="connection_failed") from exc

    def on_response(self, resp: httpx.Response) -> Done | Retry:
        self.tries += 1
        status = resp.status_code
        if status in self.call.expect:
            return Done(self._json(resp) if status != 204 else None)
        body = self._json(resp)
        code = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        if self.call.safety is Safety.DELETE and status == 404 and self.maybe_applied:
            return Done(None)  # gone: this call's earlier attempt, or another writer, deleted it
        if retryable_status(self.call.safety, status, code) and self._left():
            if status != 503:
                self.maybe_applied = True
            return Retry(self.policy.delay(self.tries, retry_after_seconds(resp)))
        err = error_from_response(status, body, resp.headers.get("X-Request-Id"),
                                  self.call.idempotency_key)
        if (self.maybe_applied and self.call.method != "GET" and status >= 500
                and not isinstance(err, OutcomeUnknown)):
            raise OutcomeUnknown(
                f"{self.call.method} {self.call.path}: an earlier attempt got no answer and the "
                f"last one {status} {err.code}: it may have been applied",
                idempotency_key=self.call.idempotency_key, status=status, body=body,
                request_id=err.request_id) from err
        err.retried = self.maybe_applied
        raise err

    @staticmethod
    def _json(resp: httpx.Response) -> Any:
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            if 200 <= resp.status_code < 300:
                raise BistoreError(f"the gateway answered {resp.status_code} with a body that is "
                                   "not JSON", code="invalid_response",
                                   status=resp.status_code) from exc
            return None


def readiness(resp: httpx.Response) -> Readiness:
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = resp.text
    return {"ready": resp.status_code == 200, "status": resp.status_code, "body": body}
