"""bistore: a Python client for the bistore gateway (Neo4j and SQLite as one store).

    from bistore import Client
    with Client("http://127.0.0.1:8080") as db:
        tx = db.transaction(provenance={"tool_id": "T34", "operation": "extract"})
        ada = tx.create_entity("Person", {"canonical_name": "Ada Lovelace"})
        ae = tx.create_entity("Org", {"canonical_name": "Analytical Engine"})
        tx.create_relationship("WORKED_ON", ada, ae)
        result = tx.commit()
        db.get_entity(result.id(ada), verify=True)["consistency"]["status"]

AsyncClient has the same methods, awaited (and ``async for`` over lists).
"""

from bistore._async import AsyncClient, AsyncTransaction
from bistore._core import __version__
from bistore._errors import (BistoreError, Conflict, EntityExists, IdempotencyConflict,
                             MethodNotAllowed, Neo4jError, NotFound, OutcomeUnknown, PayloadTooLarge,
                             ReconciliationRunning, RelationshipExists, StorageError, Unauthorized,
                             Unavailable, ValidationError, VersionConflict, Forbidden)
from bistore._pages import Page
from bistore._retry import NO_RETRIES, RetryPolicy
from bistore._sync import Client, Transaction
from bistore._transaction import EntityId, Op, Ref, TransactionBuilder, TransactionResult
from bistore._types import (Alert, Alerts, Consistency, Entity, Finding, OperationResult, Progress,
                            PropertyValue, Readiness, Reconciliation, ReconciliationSummary,
                            Relationship, Stats, TransactionRecord)

__all__ = [
    "AsyncClient", "AsyncTransaction", "Client", "Transaction", "TransactionBuilder",
    "TransactionResult", "Op", "Ref", "EntityId", "Page", "RetryPolicy", "NO_RETRIES",
    "BistoreError", "ValidationError", "PayloadTooLarge", "Unauthorized", "Forbidden", "NotFound",
    "MethodNotAllowed", "Conflict", "EntityExists", "RelationshipExists", "IdempotencyConflict",
    "ReconciliationRunning", "VersionConflict", "Neo4jError", "StorageError", "Unavailable",
    "OutcomeUnknown", "Alert", "Alerts", "Consistency", "Entity", "Finding", "OperationResult",
    "Progress", "PropertyValue", "Readiness", "Reconciliation", "ReconciliationSummary",
    "Relationship", "Stats", "TransactionRecord", "__version__",
]
