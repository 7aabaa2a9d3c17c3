"""The transaction builder (shared by Client and AsyncClient) and its result."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, overload

from bistore._types import Json, OperationResult


@dataclass(frozen=True)
class Op:
    """One operation of a transaction: its position, to find its result."""

    index: int
    op: str


@dataclass(frozen=True)
class Ref(Op):
    """An object created in a transaction, usable wherever a later operation of
    the same transaction takes an id (endpoints, update, delete); after the
    commit, ``result.id(ref)`` is its id."""

    name: str = ""
    owner: int = field(default=0, compare=False, repr=False)

    def as_json(self) -> dict[str, str]:
        return {"ref": self.name}


EntityId = Union[str, Ref]
"""An id string, or a Ref of an object created earlier in the same transaction."""


def new_idempotency_key() -> str:
    return f"bistore-py-{uuid.uuid4()}"


class TransactionBuilder:
    """Collects operations; Client.transaction() / AsyncClient.transaction()
    return a subclass whose commit() sends them as one POST /v1/transactions.

    The Idempotency-Key is made here, once: committing the same builder again
    (for instance after OutcomeUnknown) replays the first answer instead of
    writing twice. Once committed (or sent), no operation can be added.
    """

    def __init__(self, provenance: Mapping[str, Json] | None = None,
                 idempotency_key: str | None = None) -> None:
        self.provenance: dict[str, Json] | None = dict(provenance) if provenance is not None else None
        self.idempotency_key = idempotency_key or new_idempotency_key()
        self._ops: list[dict[str, Json]] = []
        self._names: set[str] = set()
        self._rel_refs: set[int] = set()  # relationship creates whose ref must be sent
        self._sent = False
        self._owner = id(self)

    def __len__(self) -> int:
        return len(self._ops)

    # ---- building
    def _add(self, op: dict[str, Json]) -> int:
        if self._sent:
            raise RuntimeError("this transaction was already sent; start a new one")
        self._ops.append(op)
        return len(self._ops) - 1

    def _ref_name(self, ref: str | None) -> str:
        name = ref if ref is not None else f"r{len(self._ops)}"
        if name in self._names:
            raise ValueError(f"ref {name!r} is already used in this transaction")
        self._names.add(name)
        return name

    def _target(self, value: EntityId, what: str) -> Json:
        if isinstance(value, Ref):
            if value.owner != self._owner:
                raise ValueError(f"{what}: {value!r} belongs to another transaction")
            if value.op == "create_relationship":
                self._rel_refs.add(value.index)
            return value.as_json()
        if not isinstance(value, str):
            raise TypeError(f"{what} must be an id string or a Ref, not {type(value).__name__}")
        return value

    def create_entity(self, type: str, properties: Mapping[str, Any] | None = None, *,
                      id: str | None = None, metadata: Mapping[str, Json] | None = None,
                      ref: str | None = None) -> Ref:
        op: dict[str, Json] = {"op": "create_entity", "type": type}
        if id is not None:
            op["id"] = id
        if properties is not None:
            op["properties"] = dict(properties)
        if metadata is not None:
            op["metadata"] = dict(metadata)
        name = self._ref_name(ref)
        op["ref"] = name
        return Ref(self._add(op), "create_entity", name, self._owner)

    def create_relationship(self, type: str, source: EntityId, target: EntityId,
                            properties: Mapping[str, Any] | None = None, *, id: str | None = None,
                            ref: str | None = None) -> Ref:
        op: dict[str, Json] = {"op": "create_relationship", "type": type,
                               "source": self._target(source, "source"),
                               "target": self._target(target, "target")}
        if id is not None:
            op["id"] = id
        if properties is not None:
            op["properties"] = dict(properties)
        name = self._ref_name(ref)
        op["ref"] = name
        index = self._add(op)
        if ref is not None:
            self._rel_refs.add(index)
        return Ref(index, "create_relationship", name, self._owner)

    def update_entity(self, entity: EntityId, properties: Mapping[str, Any] | None = None, *,
                      metadata: Mapping[str, Json] | None = None,
                      if_version: int | None = None) -> Op:
        op: dict[str, Json] = {"op": "update_entity", "id": self._target(entity, "entity")}
        if properties is not None:
            op["properties"] = dict(properties)
        if metadata is not None:
            op["metadata"] = dict(metadata)
        if if_version is not None:
            op["if_version"] = if_version
        return Op(self._add(op), "update_entity")

    def delete_entity(self, entity: EntityId, *, if_version: int | None = None) -> Op:
        op: dict[str, Json] = {"op": "delete_entity", "id": self._target(entity, "entity")}
        if if_version is not None:
            op["if_version"] = if_version
        return Op(self._add(op), "delete_entity")

    def delete_relationship(self, relationship: EntityId) -> Op:
        op = {"op": "delete_relationship", "id": self._target(relationship, "relationship")}
        return Op(self._add(op), "delete_relationship")

    def cypher(self, statement: str, parameters: Mapping[str, Json] | None = None) -> Op:
        """A raw Cypher statement (the gateway needs --allow-raw-statements)."""
        op: dict[str, Json] = {"op": "cypher", "statement": statement}
        if parameters is not None:
            op["parameters"] = dict(parameters)
        return Op(self._add(op), "cypher")

    def sql(self, statement: str, parameters: Sequence[Json] | Mapping[str, Json] | None = None) -> Op:
        """A raw SQL statement (the gateway needs --allow-raw-statements)."""
        op: dict[str, Json] = {"op": "sql", "statement": statement}
        if parameters is not None:
            op["parameters"] = dict(parameters) if isinstance(parameters, Mapping) else list(parameters)
        return Op(self._add(op), "sql")

    # ---- sending
    def operations(self) -> list[dict[str, Json]]:
        """The operations as sent. A relationship's ref is sent only when it was
        named or is used by a later operation, so the builder also works with a
        gateway that takes refs on entity creates only."""
        out = []
        for i, op in enumerate(self._ops):
            if op["op"] == "create_relationship" and i not in self._rel_refs:
                op = {k: v for k, v in op.items() if k != "ref"}
            out.append(op)
        return out

    def body(self) -> dict[str, Json]:
        body: dict[str, Json] = {"operations": self.operations()}
        if self.provenance is not None:
            body["provenance"] = self.provenance
        return body

    def _mark_sent(self) -> dict[str, Json]:
        if not self._ops:
            raise ValueError("a transaction needs at least one operation")
        self._sent = True
        return self.body()



class TransactionResult:
    """The answer to a committed transaction: tx_id, state ("committed"),
    neo4j ("applied" | "pending"), results in operation order. Index it with
    the Op/Ref the builder returned (``result[ref]``), or use ``id(ref)``."""

    def __init__(self, body: Mapping[str, Json]) -> None:
        self.raw: dict[str, Json] = dict(body)
        self.tx_id: str = body["tx_id"]
        self.state: str = body.get("state", "committed")
        self.neo4j: Literal["applied", "pending"] = body.get("neo4j", "applied")
        self.results: list[OperationResult] = list(body.get("results", []))

    @overload
    def __getitem__(self, key: int) -> OperationResult: ...
    @overload
    def __getitem__(self, key: Op) -> OperationResult: ...

    def __getitem__(self, key: int | Op) -> OperationResult:
        return self.results[key.index if isinstance(key, Op) else key]

    def __iter__(self) -> Iterator[OperationResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def id(self, ref: Op) -> str:
        """The id of the object `ref` created."""
        value = self[ref].get("id")
        if not isinstance(value, str):
            raise KeyError(f"operation {ref.index} ({ref.op}) has no id in its result")
        return value

    def __repr__(self) -> str:
        return f"<TransactionResult {self.tx_id} {self.state} neo4j={self.neo4j} {len(self)} results>"
