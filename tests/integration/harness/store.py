"""A gateway's SQLite file, read directly and read-only."""

import json
import sqlite3
from pathlib import Path

# -------------------------------------------------------------------- SQLite


class Store:
    """Reads a gateway's SQLite file directly, read-only (a new connection per call,
    so every read sees the latest committed state)."""

    def __init__(self, path):
        self.path = Path(path)

    def query(self, sql, params=()):
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def value(self, sql, params=()):
        rows = self.query(sql, params)
        assert len(rows) == 1 and len(rows[0]) == 1, f"expected one value from {sql!r}, got {rows!r}"
        return next(iter(rows[0].values()))

    @staticmethod
    def _json(text):
        return None if text is None else json.loads(text)

    def entities(self):
        out = {}
        for r in self.query("SELECT * FROM entities ORDER BY id"):
            r["properties"] = self._json(r["properties"])
            r["metadata"] = self._json(r["metadata"])
            out[r["id"]] = r
        return out

    def entity(self, entity_id):
        return self.entities().get(entity_id)

    def relationships(self):
        out = {}
        for r in self.query("SELECT * FROM relationships ORDER BY id"):
            r["properties"] = self._json(r["properties"])
            out[r["id"]] = r
        return out

    def relationship(self, rel_id):
        return self.relationships().get(rel_id)

    def count_entity(self, entity_id):
        return self.value("SELECT count(*) FROM entities WHERE id = ?", (entity_id,))

    def count_relationship(self, rel_id):
        return self.value("SELECT count(*) FROM relationships WHERE id = ?", (rel_id,))

    def transactions(self, state=None):
        rows = self.query("SELECT * FROM bistore_transactions ORDER BY rowid")
        return [r for r in rows if state is None or r["state"] == state]

    def transaction(self, tx_id):
        rows = self.query("SELECT * FROM bistore_transactions WHERE tx_id = ?", (tx_id,))
        assert len(rows) <= 1, f"tx {tx_id} recorded {len(rows)} times"
        return rows[0] if rows else None

    def intents(self):
        return self.query("SELECT * FROM bistore_intents ORDER BY seq")

    def pending_intents(self):
        return self.query("SELECT * FROM bistore_intents WHERE applied_at IS NULL ORDER BY seq")

    def max_intent_seq(self):
        return self.value("SELECT max(seq) FROM bistore_intents")

    def dump(self, with_aborted=True):
        """Entities, relationships, transactions and intents, for before/after comparisons.
        with_aborted=False leaves aborted audit rows out (a refused transaction may add one)."""
        txs = self.transactions()
        if not with_aborted:
            txs = [t for t in txs if t["state"] != "aborted"]
        return {"entities": self.entities(), "relationships": self.relationships(),
                "transactions": txs, "intents": self.intents()}
