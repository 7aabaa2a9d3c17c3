"""Typed errors: one class per API error code, all under BistoreError."""

from __future__ import annotations

from typing import Any


class BistoreError(Exception):
    """An error the gateway answered (or, for transport failures, the client saw).

    code, message, field and operation_index are the API's error object
    (``{"error": {...}}``); status is the HTTP status (None when no answer
    arrived); body is the parsed answer, when there was one.
    """

    code: str
    message: str
    field: str | None
    operation_index: int | None
    status: int | None
    body: Any
    request_id: str | None
    retried: bool
    """True when an earlier attempt of the same call got no answer (it may have been applied)."""

    def __init__(self, message: str, *, code: str = "error", field: str | None = None,
                 operation_index: int | None = None, status: int | None = None,
                 body: Any = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.operation_index = operation_index
        self.status = status
        self.body = body
        self.request_id = request_id
        self.retried = False

    def __str__(self) -> str:
        extra = [f"{name} {value}" for name, value in
                 (("status", self.status), ("field", self.field),
                  ("operation", self.operation_index)) if value is not None]
        return f"{self.code}: {self.message}" + (f" ({', '.join(extra)})" if extra else "")


class ValidationError(BistoreError):
    """400 invalid_request / invalid_json (also 414 uri_too_long, 415 unsupported_media_type)."""


class PayloadTooLarge(BistoreError):
    """413 payload_too_large: too many operations or too large a body."""


class Unauthorized(BistoreError):
    """401 unauthorized: no API key, or an unknown one."""


class Forbidden(BistoreError):
    """403 forbidden: the key lacks the scope, or raw statements are not enabled."""


class NotFound(BistoreError):
    """404 not_found."""


class MethodNotAllowed(BistoreError):
    """405 method_not_allowed."""


class Conflict(BistoreError):
    """409: the base of the conflicts below."""


class EntityExists(Conflict):
    """409 entity_exists: a supplied entity id is taken."""


class RelationshipExists(Conflict):
    """409 relationship_exists: a supplied relationship id is taken."""


class IdempotencyConflict(Conflict):
    """409 idempotency_conflict: the same Idempotency-Key with a different body."""


class ReconciliationRunning(Conflict):
    """409 reconciliation_running: one reconciliation runs at a time."""


class VersionConflict(BistoreError):
    """412 version_mismatch: If-Match / if_version named another version."""


class Neo4jError(BistoreError):
    """neo4j_error: Neo4j refused a statement (502; 400 for a raw cypher operation)."""


class StorageError(BistoreError):
    """500 storage_error / 507 storage_full: SQLite failed; nothing was written."""


class Unavailable(BistoreError):
    """503 neo4j_unavailable / not_ready (nothing written), or the gateway could
    not be reached at all (status None, after the retries)."""


class OutcomeUnknown(BistoreError):
    """The write may or may not have happened.

    Either the gateway said so (500 outcome_unknown), or the client gave up
    after an attempt whose answer never arrived. ``idempotency_key`` is the
    key the attempts carried (None for PATCH and reconciliation starts,
    which have none): send the same call again with it
    (``idempotency_key=err.idempotency_key``, or ``tx.commit()`` again) to
    learn the outcome without writing twice.
    """

    idempotency_key: str | None

    def __init__(self, message: str, *, idempotency_key: str | None = None, **kw: Any) -> None:
        kw.setdefault("code", "outcome_unknown")
        super().__init__(message, **kw)
        self.idempotency_key = idempotency_key


_BY_CODE: dict[str, type[BistoreError]] = {
    "invalid_json": ValidationError,
    "invalid_request": ValidationError,
    "uri_too_long": ValidationError,
    "unsupported_media_type": ValidationError,
    "payload_too_large": PayloadTooLarge,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "entity_exists": EntityExists,
    "relationship_exists": RelationshipExists,
    "idempotency_conflict": IdempotencyConflict,
    "reconciliation_running": ReconciliationRunning,
    "version_mismatch": VersionConflict,
    "neo4j_error": Neo4jError,
    "storage_error": StorageError,
    "storage_full": StorageError,
    "neo4j_unavailable": Unavailable,
    "not_ready": Unavailable,
    "outcome_unknown": OutcomeUnknown,
}

_BY_STATUS: dict[int, type[BistoreError]] = {
    400: ValidationError, 401: Unauthorized, 403: Forbidden, 404: NotFound,
    405: MethodNotAllowed, 409: Conflict, 412: VersionConflict, 413: PayloadTooLarge,
    414: ValidationError, 415: ValidationError, 502: Neo4jError, 503: Unavailable,
    507: StorageError,
}


def error_from_response(status: int, body: Any, request_id: str | None = None,
                        idempotency_key: str | None = None) -> BistoreError:
    """The typed exception for an error answer (code first, then status)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        code: str = err["code"]
        message = str(err.get("message") or code)
        field = err.get("field") if isinstance(err.get("field"), str) else None
        index = err.get("operation_index")
        op_index = index if isinstance(index, int) and not isinstance(index, bool) else None
        cls = _BY_CODE.get(code) or _BY_STATUS.get(status, BistoreError)
    else:
        code = f"http_{status}"
        message = f"HTTP {status} without an error body"
        field = None
        op_index = None
        cls = _BY_STATUS.get(status, BistoreError)
    kw: dict[str, Any] = dict(code=code, field=field, operation_index=op_index, status=status,
                              body=body, request_id=request_id)
    if cls is OutcomeUnknown:
        return OutcomeUnknown(message, idempotency_key=idempotency_key, **kw)
    return cls(message, **kw)
