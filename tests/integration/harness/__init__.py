"""The harness of the integration and fault tests: the session Neo4j, gateway
processes, direct reads of both stores and the assertions that compare them.
Helpers of one group of tests are in harness.api, harness.faults and
harness.reconcile."""

from harness.asserts import (assert_absent, assert_entity_mirrored, assert_intents_settled,
                             assert_relationship_mirrored, assert_stores_consistent)
from harness.common import (BISTORE_BIN, CONNECTION_ERRORS, HASH_RE, NEO4J_SH, READY_TIMEOUT, REPO,
                            REQUEST_TIMEOUT, RFC3339_UTC_RE, UUID7_RE, poll)
from harness.gateway import Gateway, Response
from harness.neo4j import Neo4j, Neo4jError
from harness.store import Store

__all__ = ["assert_absent", "assert_entity_mirrored", "assert_intents_settled",
           "assert_relationship_mirrored", "assert_stores_consistent", "BISTORE_BIN",
           "CONNECTION_ERRORS", "HASH_RE", "NEO4J_SH", "READY_TIMEOUT", "REPO", "REQUEST_TIMEOUT",
           "RFC3339_UTC_RE", "UUID7_RE", "poll", "Gateway", "Response", "Neo4j", "Neo4jError", "Store"]
