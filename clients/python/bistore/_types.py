"""The API's records, as TypedDicts: what the gateway answers, key for key (API.md)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict, Union

PropertyValue = Union[str, int, float, bool, list[str], list[int], list[float], list[bool], None]
"""What Neo4j can store (None only in a PATCH, where it removes the key)."""

Properties = dict[str, Any]
Json = Any


class Consistency(TypedDict, total=False):
    status: Literal["consistent", "mismatch", "missing_in_neo4j"]
    details: Json


class Entity(TypedDict, total=False):
    id: str
    type: str
    properties: Properties
    metadata: dict[str, Json] | None
    version: int
    created_at: str
    updated_at: str
    tx_id: str
    consistency: Consistency  # only with get_entity(..., verify=True)


class Relationship(TypedDict, total=False):
    id: str
    type: str
    source: str
    target: str
    properties: Properties
    version: int
    created_at: str
    updated_at: str
    tx_id: str


class OperationResult(TypedDict, total=False):
    op: str
    id: str
    version: int
    rows: list[dict[str, Json]]  # raw statements, on first execution only
    rowcount: int  # sql


class TransactionRecord(TypedDict, total=False):
    tx_id: str
    state: Literal["committed", "pending", "applied", "aborted"]
    created_at: str
    applied_at: str | None
    operations: list[dict[str, Json]]
    error: dict[str, Json] | None
    provenance: dict[str, Json] | None


class Progress(TypedDict, total=False):
    scanned: int
    total: int


class ReconciliationSummary(TypedDict, total=False):
    entities_sqlite: int
    entities_neo4j: int
    relationships_sqlite: int
    relationships_neo4j: int
    only_in_sqlite: int
    only_in_neo4j: int
    mismatched: int
    duplicate_ids: int
    missing_ids: int
    repaired: int


class Reconciliation(TypedDict, total=False):
    id: str
    state: Literal["running", "done", "failed"]
    mode: Literal["fast", "deep"]
    repair: Literal["none", "sqlite_wins", "neo4j_wins"]
    dry_run: bool
    started_at: str
    finished_at: str | None
    progress: Progress
    summary: ReconciliationSummary
    error: Json


class Finding(TypedDict, total=False):
    kind: Literal["only_in_neo4j", "only_in_sqlite", "mismatch", "duplicate_id", "missing_id"]
    object: Literal["entity", "relationship"]
    id: str | None
    sqlite: dict[str, Json] | None
    neo4j: dict[str, Json] | None
    action: Literal["none", "created", "updated", "deleted"]


class Alert(TypedDict, total=False):
    name: str
    since: str
    value: float
    threshold: float
    message: str
    resolved_at: str


class Alerts(TypedDict, total=False):
    active: list[Alert]
    recent: list[Alert]


class Stats(TypedDict, total=False):
    windows: dict[str, dict[str, Json]]
    pending_intents: int
    oldest_pending_s: float | None
    last_reconciliation: Json
    alerts: Json


class Readiness(TypedDict, total=False):
    ready: bool
    status: int
    body: Json
