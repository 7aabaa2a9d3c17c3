"""What Client and AsyncClient share: each endpoint as a Call, and the retry
state machine that turns attempts into a result or a typed error. Neither
does any I/O; the two clients only send and sleep."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from bistore._errors import BistoreError, OutcomeUnknown, Unavailable, error_from_response
from bistore._retry import (MAYBE_APPLIED_CODES, NOT_SENT, RetryPolicy, Safety, retry_after_seconds,
                            retryable_exception, retryable_status)
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


def addresses(base_url: str | Sequence[str]) -> tuple[str, ...]:
    """The gateway addresses a client was given: one string, or several
    (a primary and its standby), each without its trailing '/'."""
    urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
    if not urls:
        raise ValueError("give at least one gateway address")
    for url in urls:
        if not isinstance(url, str):
            raise TypeError(f"a gateway address must be a string, not {type(url).__name__}")
    return tuple(url.rstrip("/") for url in urls)


class Addressed:
    """The gateway addresses of a client (sync or async): which there are,
    and the one calls start at (the last that answered)."""

    def __init__(self, base_url: str | Sequence[str]) -> None:
        self._addresses = addresses(base_url)
        self._current = 0  # the address that answered last; calls start there

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every gateway address given, in the order they are tried."""
        return self._addresses

    @property
    def current_address(self) -> str:
        """The address the next call goes to first: the last one that answered."""
        return self._addresses[self._current]

    @property
    def base_url(self) -> str:
        """current_address (the name from when a client had one address)."""
        return self.current_address


@dataclass
class Done:
    value: Any


@dataclass
class Retry:
    delay: float


class Attempts:
    """The retry state of one Call. Feed it each attempt's exception or
    response; it answers Done(value), Retry(delay), or raises the typed error.

    `index` is the address the next attempt goes to: `start` first, then,
    after each failure that is retried, the next one round the list.
    `answered` is the address whose answer settled the call (a success, or
    an error that is not retried), None while there is none: the client
    stays on it for its next calls."""

    def __init__(self, call: Call, policy: RetryPolicy, urls: Sequence[str] = ("",),
                 start: int = 0) -> None:
        assert urls and 0 <= start < len(urls), (urls, start)
        self.call = call
        self.policy = policy
        self.urls = tuple(urls)
        self.index = start
        self.answered: int | None = None
        self.tries = 0
        self.maybe_applied = False  # an earlier attempt may have reached the stores
        self._began = time.monotonic()
        self._retry_after: float | None = None  # the longest asked for in this round

    @property
    def url(self) -> str:
        """Where the next attempt goes: the address and the call's path."""
        return self.urls[self.index] + self.call.path

    def _left(self) -> bool:
        if self.policy.deadline is not None:
            return time.monotonic() - self._began < self.policy.deadline
        return self.tries < self.policy.attempts

    def _retry(self, retry_after: float | None) -> Retry:
        """The next attempt goes to the next address: at once while this round
        has addresses not yet tried, after the policy's backoff once every
        address failed (with one address, after every failure, as ever)."""
        if retry_after is not None:
            self._retry_after = max(retry_after, self._retry_after or 0.0)
        self.index = (self.index + 1) % len(self.urls)
        if self.tries % len(self.urls):
            return Retry(0.0)  # a quick switch: the other gateway's answer is not waited for
        rounds = self.tries // len(self.urls)
        wait = self.policy.delay(rounds, self._retry_after)
        self._retry_after = None
        if self.policy.deadline is not None:
            wait = min(wait, max(0.0, self._began + self.policy.deadline - time.monotonic()))
        return Retry(wait)

    def _unreached(self) -> str:
        if len(self.urls) == 1:
            return "the gateway could not be reached"
        return f"none of the gateways ({', '.join(self.urls)}) could be reached"

    def on_exception(self, exc: Exception) -> Retry:
        self.tries += 1
        sent = not isinstance(exc, NOT_SENT)
        if sent:
            self.maybe_applied = True
        if self._left() and retryable_exception(self.call.safety, exc):
            return self._retry(None)
        what = f"{self.call.method} {self.call.path}"
        if self.call.method != "GET" and self.maybe_applied:
            raise OutcomeUnknown(
                f"{what}: no answer after {self.tries} attempt(s) ({type(exc).__name__}: {exc}); "
                "it may have been applied" +
                ("; repeat it with the same idempotency_key to learn the outcome"
                 if self.call.idempotency_key else ""),
                idempotency_key=self.call.idempotency_key) from exc
        raise Unavailable(f"{what}: {self._unreached()} after {self.tries} "
                          f"attempt(s) ({type(exc).__name__}: {exc})",
                          code="connection_failed") from exc

    def on_response(self, resp: httpx.Response) -> Done | Retry:
        self.tries += 1
        earlier = self.maybe_applied
        status = resp.status_code
        if status in self.call.expect:
            self.answered = self.index
            return Done(self._json(resp) if status != 204 else None)
        body = self._json(resp)
        code = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
        if self.call.safety is Safety.DELETE and status == 404 and self.maybe_applied:
            self.answered = self.index
            return Done(None)  # gone: this call's earlier attempt, or another writer, deleted it
        in_doubt = status == 503 and code in MAYBE_APPLIED_CODES
        if in_doubt:
            self.maybe_applied = True  # the gateway says so: the write may still take effect
        retryable = retryable_status(self.call.safety, status, code)
        if retryable and self._left():
            if status != 503:
                self.maybe_applied = True
            return self._retry(retry_after_seconds(resp))
        if not retryable:
            self.answered = self.index  # a gateway that answers for itself: stay on it
        err = error_from_response(status, body, resp.headers.get("X-Request-Id"),
                                  self.call.idempotency_key)
        if (self.maybe_applied and self.call.method != "GET" and status >= 500
                and not isinstance(err, OutcomeUnknown)):
            what = f"{self.call.method} {self.call.path}"
            raise OutcomeUnknown(
                f"{what}: the last attempt answered {status} {err.code}, but an earlier one may "
                "have been applied" if earlier else
                f"{what}: the gateway answered {status} {err.code}: it may have been applied",
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
