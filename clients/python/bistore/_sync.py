"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import httpx

from bistore import _core as core
from bistore._core import Attempts, Call, Done, delete, if_match, opt, post, seg
from bistore._pages import Page
from bistore._retry import RetryPolicy, Safety
from bistore._transaction import TransactionBuilder, TransactionResult, new_idempotency_key
from bistore._types import (Alerts, Entity, Finding, Json, PropertyValue, Readiness, Reconciliation,
                            Relationship, Stats, TransactionRecord)


class Transaction(TransactionBuilder):
    """A transaction being built; ``commit()`` sends it (see TransactionBuilder)."""

    def __init__(self, client: Client, provenance: Mapping[str, Json] | None,
                 idempotency_key: str | None) -> None:
        super().__init__(provenance, idempotency_key)
        self._client = client

    def commit(self) -> TransactionResult:
        """All operations in both stores, or none. Safe to call again after
        OutcomeUnknown: the same Idempotency-Key answers with the first outcome."""
        return self._client.commit(self._mark_sent(), idempotency_key=self.idempotency_key)


class Client(core.Addressed):
    """bistore over HTTP, synchronously.

    ``Client("http://127.0.0.1:8080", api_key=None, timeout=30.0, retry=RetryPolicy())``;
    use it as a context manager, or call close(). Several addresses
    (``Client(["http://primary:8080", "http://standby:8080"])``, a primary and
    its standby) are tried in turn: a retried failure sends the next attempt
    to the next address, and calls stay on the one that answered. ``transport`` and
    ``http_client`` are for tests and custom set-ups (an httpx.Client of your own
    is used as is and not closed here; the client's headers are added to it).
    """

    def __init__(self, base_url: str | Sequence[str], *, api_key: str | None = None,
                 timeout: float | httpx.Timeout = 30.0, retry: RetryPolicy | None = None,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None,
                 http_client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        core.Addressed.__init__(self, base_url)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        base_headers = {"User-Agent": core.USER_AGENT, "Accept": "application/json"}
        if api_key is not None:
            base_headers["Authorization"] = f"Bearer {api_key}"
        base_headers.update(headers or {})
        self._owns = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        self._http.headers.update(base_headers)

    def close(self) -> None:
        if self._owns:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the one place that sends
    def _call(self, call: Call) -> Any:
        attempts = Attempts(call, self.retry, self._addresses, self._current)
        content = call.content()
        headers = call.request_headers()
        while True:
            try:
                resp = self._http.request(call.method, attempts.url,
                                          params=call.params or None,
                                          content=content, headers=headers)
            except httpx.TransportError as exc:
                step = attempts.on_exception(exc)
            else:
                try:
                    outcome = attempts.on_response(resp)
                finally:
                    if attempts.answered is not None:
                        self._current = attempts.answered  # sticky: stay where answers come from
                if isinstance(outcome, Done):
                    return outcome.value
                step = outcome
            self._sleep(step.delay)

    # ---- entities
    def create_entity(self, type: str, properties: Mapping[str, PropertyValue] | None = None, *,
                      id: str | None = None, metadata: Mapping[str, Json] | None = None,
                      idempotency_key: str | None = None) -> Entity:
        body = core.entity_body(type, properties, id, metadata)
        return cast(Entity, self._call(post("/v1/entities", body, key=idempotency_key, expect=(201,))))

    def get_entity(self, id: str, *, verify: bool = False) -> Entity:
        return cast(Entity, self._call(Call("GET", f"/v1/entities/{seg(id)}",
                                            params=opt(verify=True if verify else None))))

    def list_entities_pages(self, *, type: str | None = None, limit: int = 100,
                            after: str | None = None) -> Iterator[Page[Entity]]:
        return self._pages("/v1/entities", opt(type=type, limit=limit), after)

    def list_entities(self, *, type: str | None = None, limit: int = 100,
                      after: str | None = None) -> Iterator[Entity]:
        """Every entity (of `type`), fetching `limit` per page as the iteration goes."""
        for page in self.list_entities_pages(type=type, limit=limit, after=after):
            yield from page.items

    def patch_entity(self, id: str, properties: Mapping[str, PropertyValue] | None = None, *,
                     metadata: Mapping[str, Json] | None = None, if_version: int | None = None,
                     idempotency_key: str | None = None) -> Entity:
        """Merge `properties` (None removes a key); `metadata` replaces;
        if_version is sent as If-Match.

        Sent with an Idempotency-Key (the caller's, or a fresh one per call)
        and retried like a create: a retry after a lost answer gets the first
        answer, and the PATCH is applied once (its version bumped once)."""
        call = Call("PATCH", f"/v1/entities/{seg(id)}", Safety.IDEMPOTENT,
                    body=core.patch_body(properties, metadata), headers=if_match(if_version),
                    idempotency_key=idempotency_key or new_idempotency_key())
        return cast(Entity, self._call(call))

    def delete_entity(self, id: str, *, if_version: int | None = None,
                      idempotency_key: str | None = None) -> None:
        """Deletes the entity and its relationships. Sent with an
        Idempotency-Key and retried: a retry after a lost answer gets the
        first answer (204)."""
        self._call(delete(f"/v1/entities/{seg(id)}", idempotency_key, if_match(if_version)))

    # ---- relationships
    def create_relationship(self, type: str, source: str, target: str,
                            properties: Mapping[str, PropertyValue] | None = None, *,
                            id: str | None = None, idempotency_key: str | None = None) -> Relationship:
        body = core.relationship_body(type, source, target, properties, id)
        return cast(Relationship, self._call(post("/v1/relationships", body, key=idempotency_key,
                                                  expect=(201,))))

    def get_relationship(self, id: str) -> Relationship:
        return cast(Relationship, self._call(Call("GET", f"/v1/relationships/{seg(id)}")))

    def delete_relationship(self, id: str, *, idempotency_key: str | None = None) -> None:
        """Sent with an Idempotency-Key and retried like delete_entity."""
        self._call(delete(f"/v1/relationships/{seg(id)}", idempotency_key))

    # ---- transactions
    def transaction(self, provenance: Mapping[str, Json] | None = None, *,
                    idempotency_key: str | None = None) -> Transaction:
        """A builder: ``a = tx.create_entity(...)`` returns a Ref usable as a
        relationship's source/target and in update/delete; ``tx.commit()``."""
        return Transaction(self, provenance, idempotency_key)

    def commit(self, body: Mapping[str, Json], *, idempotency_key: str | None = None) -> TransactionResult:
        """POST /v1/transactions with a ready body ({"operations": [...], "provenance": ...})."""
        return TransactionResult(self._call(post("/v1/transactions", dict(body), key=idempotency_key)))

    def get_transaction(self, tx_id: str) -> TransactionRecord:
        return cast(TransactionRecord, self._call(Call("GET", f"/v1/transactions/{seg(tx_id)}")))

    def list_transactions(self, *, state: str | None = None, limit: int = 100,
                          after: str | None = None) -> Iterator[TransactionRecord]:
        for page in self._pages("/v1/transactions", opt(state=state, limit=limit), after):
            yield from cast(Page[TransactionRecord], page).items

    # ---- ids
    def reserve_ids(self, count: int = 1) -> list[str]:
        """Fresh UUIDv7s (1..10,000) for clients that need ids before they write."""
        answer = self._call(post("/v1/ids", {"count": count}, key=None))
        return list(answer["ids"])

    # ---- reconciliation
    def start_reconciliation(self, mode: str = "fast", repair: str = "none",
                             dry_run: bool = False) -> Reconciliation:
        """Starts a run (202). Not deduplicated by the gateway, so a lost answer
        is not retried (OutcomeUnknown): list_reconciliations() shows the run."""
        body = {"mode": mode, "repair": repair, "dry_run": dry_run}
        return cast(Reconciliation, self._call(post("/v1/reconciliations", body, key=None,
                                                    expect=(202,), safety=Safety.UNSAFE)))

    def get_reconciliation(self, id: str) -> Reconciliation:
        return cast(Reconciliation, self._call(Call("GET", f"/v1/reconciliations/{seg(id)}")))

    def list_reconciliations(self, *, limit: int = 100) -> Iterator[Reconciliation]:
        """Runs, newest first."""
        for page in self._pages("/v1/reconciliations", opt(limit=limit), None):
            yield from cast(Page[Reconciliation], page).items

    def wait_reconciliation(self, id: str, *, poll_interval: float = 0.5,
                            timeout: float | None = None,
                            progress: Callable[[Reconciliation], None] | None = None) -> Reconciliation:
        """Polls until the run is done or failed; `progress` gets every state read.
        TimeoutError when `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.get_reconciliation(id)
            if progress is not None:
                progress(run)
            if run.get("state") != "running":
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"reconciliation {id} still running after {timeout} s")
            self._sleep(poll_interval)

    def reconcile(self, mode: str = "fast", repair: str = "none", dry_run: bool = False, *,
                  progress: Callable[[Reconciliation], None] | None = None,
                  poll_interval: float = 0.5, timeout: float | None = None) -> Reconciliation:
        """start_reconciliation + wait_reconciliation."""
        run = self.start_reconciliation(mode, repair, dry_run)
        return self.wait_reconciliation(run["id"], poll_interval=poll_interval, timeout=timeout,
                                        progress=progress)

    def findings_pages(self, id: str, *, kind: str | None = None,
                       limit: int = 100) -> Iterator[Page[Finding]]:
        return self._pages(f"/v1/reconciliations/{seg(id)}/findings", opt(kind=kind, limit=limit), None)

    def findings(self, id: str, *, kind: str | None = None, limit: int = 100) -> Iterator[Finding]:
        """Every finding of a run, `limit` per page."""
        for page in self.findings_pages(id, kind=kind, limit=limit):
            yield from page.items

    # ---- operations
    def stats(self) -> Stats:
        return cast(Stats, self._call(Call("GET", "/v1/stats")))

    def alerts(self) -> Alerts:
        return cast(Alerts, self._call(Call("GET", "/v1/alerts")))

    def health(self) -> bool:
        """True while the current gateway serves (GET /healthz answers 200); one attempt, no
        retries, and no other address tried."""
        try:
            resp = self._http.get(self.current_address + "/healthz")
        except httpx.TransportError:
            return False
        return resp.status_code == 200

    def ready(self) -> Readiness:
        """GET /readyz of the current address, without retries: {"ready", "status", "body"}
        (body has the reason)."""
        try:
            resp = self._http.get(self.current_address + "/readyz")
        except httpx.TransportError as exc:
            return {"ready": False, "status": 0, "body": {"error": str(exc)}}
        return core.readiness(resp)

    # ---- pages
    def _pages(self, path: str, params: dict[str, str], after: str | None) -> Iterator[Page[Any]]:
        while True:
            call = Call("GET", path, params=dict(params, **opt(after=after)))
            page: Page[Any] = Page.from_json(self._call(call))
            yield page
            if page.next is None:
                return
            after = page.next
