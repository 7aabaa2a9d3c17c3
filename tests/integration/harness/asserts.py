"""The shared assertions: both stores read directly and compared field by field."""



from harness.common import HASH_RE

# ---------------------------------------------------------- shared assertions


def hash_parts(hex_hash):
    """The hash's two 30-bit parts (canon_hash_parts): bits 63..34 and 33..4."""
    h = int(hex_hash, 16)
    return h >> 34, (h >> 4) & 0x3FFFFFFF


ID_ALPHABET = "-.0123456789:ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def id_part(eid):
    """An entity id's part (canon_id_part): a 30-bit polynomial over its characters."""
    k = 0
    for c in eid:
        k = (k * 131 + ID_ALPHABET.index(c) + 1) % (1 << 30)
    return k


def _pop_parts(what, props, row):
    """Neo4j's _h1/_h2 are the parts of the row's hash (written with _h)."""
    parts = props.pop("_h1", None), props.pop("_h2", None)
    assert parts == hash_parts(row["hash"]), f"{what}: Neo4j _h1/_h2 {parts} != parts of {row['hash']}"


def assert_entity_mirrored(store, neo4j, entity_id, expect=None):
    """The entity is in both stores exactly once, with the same type, properties,
    version and hash; `expect` (type/properties/version) is checked too."""
    assert store.count_entity(entity_id) == 1, f"entity {entity_id} not in SQLite exactly once"
    assert neo4j.count_entity(entity_id) == 1, f"entity {entity_id} not in Neo4j exactly once"
    row = store.entity(entity_id)
    node = neo4j.entities()[entity_id]
    _compare_entity(entity_id, row, node)
    if expect:
        for key in ("type", "properties", "version"):
            if key in expect:
                assert row[key] == expect[key], f"SQLite {key} of {entity_id}: {row[key]!r} != {expect[key]!r}"
    return row


def assert_relationship_mirrored(store, neo4j, rel_id, expect=None):
    assert store.count_relationship(rel_id) == 1, f"relationship {rel_id} not in SQLite exactly once"
    assert neo4j.count_relationship(rel_id) == 1, f"relationship {rel_id} not in Neo4j exactly once"
    row = store.relationship(rel_id)
    rel = neo4j.relationships()[rel_id]
    _compare_relationship(rel_id, row, rel)
    if expect:
        for key in ("type", "properties", "version", "source_id", "target_id"):
            if key in expect:
                assert row[key] == expect[key], f"SQLite {key} of {rel_id}: {row[key]!r} != {expect[key]!r}"
    return row


def assert_absent(store, neo4j, entity_ids=(), rel_ids=()):
    for eid in entity_ids:
        assert store.count_entity(eid) == 0, f"entity {eid} is in SQLite"
        assert neo4j.count_entity(eid) == 0, f"entity {eid} is in Neo4j"
    for rid in rel_ids:
        assert store.count_relationship(rid) == 0, f"relationship {rid} is in SQLite"
        assert neo4j.count_relationship(rid) == 0, f"relationship {rid} is in Neo4j"


def _compare_entity(eid, row, node):
    assert node["labels"] == {"Entity", row["type"]}, f"labels of {eid}: {node['labels']} vs type {row['type']}"
    props = dict(node["props"])
    assert props.pop("id", None) == eid
    v, h = props.pop("_v", None), props.pop("_h", None)
    assert v == row["version"], f"{eid}: Neo4j _v {v!r} != SQLite version {row['version']!r}"
    assert h == row["hash"], f"{eid}: Neo4j _h {h!r} != SQLite hash {row['hash']!r}"
    assert HASH_RE.match(str(row["hash"])), f"{eid}: hash {row['hash']!r} is not 16 hex chars"
    _pop_parts(eid, props, row)
    hid = props.pop("_hid", None)
    assert hid == id_part(eid), f"{eid}: Neo4j _hid {hid!r} != {id_part(eid)}"
    assert props == row["properties"], f"{eid}: Neo4j properties {props!r} != SQLite {row['properties']!r}"


def _compare_relationship(rid, row, rel):
    assert rel["type"] == row["type"], f"{rid}: Neo4j type {rel['type']} != SQLite {row['type']}"
    assert rel["source"] == row["source_id"] and rel["target"] == row["target_id"], \
        f"{rid}: Neo4j {rel['source']}->{rel['target']} != SQLite {row['source_id']}->{row['target_id']}"
    props = dict(rel["props"])
    assert props.pop("id", None) == rid
    v, h = props.pop("_v", None), props.pop("_h", None)
    assert v == row["version"], f"{rid}: Neo4j _v {v!r} != SQLite version {row['version']!r}"
    assert h == row["hash"], f"{rid}: Neo4j _h {h!r} != SQLite hash {row['hash']!r}"
    assert HASH_RE.match(str(row["hash"])), f"{rid}: hash {row['hash']!r} is not 16 hex chars"
    _pop_parts(rid, props, row)
    assert props == row["properties"], f"{rid}: Neo4j properties {props!r} != SQLite {row['properties']!r}"


def assert_stores_consistent(store, neo4j):
    """Both stores hold exactly the same entities and relationships, field by field."""
    s_ent, n_ent = store.entities(), neo4j.entities()
    assert set(s_ent) == set(n_ent), (f"entity ids differ: only SQLite {sorted(set(s_ent) - set(n_ent))}, "
                                      f"only Neo4j {sorted(set(n_ent) - set(s_ent))}")
    for eid in s_ent:
        _compare_entity(eid, s_ent[eid], n_ent[eid])
    s_rel, n_rel = store.relationships(), neo4j.relationships()
    assert set(s_rel) == set(n_rel), (f"relationship ids differ: only SQLite {sorted(set(s_rel) - set(n_rel))}, "
                                      f"only Neo4j {sorted(set(n_rel) - set(s_rel))}")
    for rid in s_rel:
        _compare_relationship(rid, s_rel[rid], n_rel[rid])
    assert neo4j.value("MATCH ()-[r]->() RETURN count(r)") == len(s_rel), "Neo4j has extra relationships"
    assert neo4j.other_nodes() == [], "Neo4j has nodes that are neither entities nor bookkeeping"


def assert_intents_settled(store, neo4j):
    """No intent pending, and the watermark sits at the highest intent seq."""
    pending = store.pending_intents()
    assert pending == [], f"pending intents remain: {[(p['seq'], p['tx_id']) for p in pending]}"
    marks = neo4j.watermarks()
    assert len(marks) == 1, f"expected one watermark node, found {marks}"
    top = store.max_intent_seq()
    if top is None:
        assert marks[0]["seq"] in (0, None), f"no intents but watermark {marks[0]}"
    else:
        assert marks[0]["seq"] == top, f"watermark {marks[0]['seq']} != highest intent seq {top}"
