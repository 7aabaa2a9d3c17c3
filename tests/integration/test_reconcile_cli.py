"""`bistore check` and `bistore repair`: the reconciliation without a gateway
(check) and with one in-process (repair), and their exit statuses."""


from harness import assert_intents_settled, assert_stores_consistent
from harness.reconcile import (run_cli, dmg_neo4j_node_deleted, dmg_neo4j_property_edited,
                               chk_node_recreated, chk_p1_restored_in_neo4j)


# ------------------------------------------------------------------- 7. CLI


def test_cli_check_and_repair(ctx, neo4j):
    gw = ctx.gw
    store_args = ["--sqlite", str(gw.sqlite_path), "--neo4j-url", neo4j.url]
    out = run_cli("check", *store_args)
    assert out.returncode == 0, f"check on a clean store: {out.returncode}\n{out.stdout}\n{out.stderr}"
    out = run_cli("check", "--deep", *store_args)
    assert out.returncode == 0, f"deep check on a clean store: {out.returncode}\n{out.stdout}\n{out.stderr}"

    # a node deleted behind the gateway's back (the gateway keeps serving)
    dmg_neo4j_node_deleted(ctx)
    out = run_cli("check", *store_args)
    assert out.returncode == 1, f"check after damage: {out.returncode}\n{out.stdout}\n{out.stderr}"
    lines = [ln for ln in out.stdout.splitlines() if "t1" in ln]
    assert lines and "only_in_sqlite" in lines[0], out.stdout
    assert gw.get("/readyz").status == 200

    # a property edit only a deep check sees
    dmg_neo4j_property_edited(ctx)
    out = run_cli("check", *store_args)
    assert out.returncode == 1 and "p1" not in out.stdout, out.stdout
    out = run_cli("check", "--deep", *store_args)
    assert out.returncode == 1, out
    assert any("p1" in ln and "mismatch" in ln for ln in out.stdout.splitlines()), out.stdout
    assert any("t1" in ln and "only_in_sqlite" in ln for ln in out.stdout.splitlines()), out.stdout

    # a dry-run repair changes nothing
    assert gw.terminate() == 0
    before = (gw.store.dump(), neo4j.dump())
    out = run_cli("repair", "--policy", "sqlite_wins", "--deep", "--dry-run", *store_args)
    assert out.returncode == 0, f"{out.returncode}\n{out.stdout}\n{out.stderr}"
    assert (gw.store.dump(), neo4j.dump()) == before, "repair --dry-run wrote something"

    # repair with the gateway stopped
    out = run_cli("repair", "--policy", "sqlite_wins", "--deep", *store_args)
    assert out.returncode == 0, f"repair: {out.returncode}\n{out.stdout}\n{out.stderr}"
    chk_node_recreated(ctx)
    chk_p1_restored_in_neo4j(ctx)
    assert_stores_consistent(gw.store, neo4j)
    assert_intents_settled(gw.store, neo4j)
    for deep in ((), ("--deep",)):
        out = run_cli("check", *deep, *store_args)
        assert out.returncode == 0, f"check{deep} after repair: {out.returncode}\n{out.stdout}\n{out.stderr}"


def test_cli_errors_exit_2(tmp_path):
    out = run_cli("check", "--sqlite", str(tmp_path / "x.sqlite"), "--neo4j-url", "http://127.0.0.1:1")
    assert out.returncode == 2, f"unreachable Neo4j: {out.returncode}\n{out.stdout}\n{out.stderr}"
    out = run_cli("repair", "--policy", "bogus", "--sqlite", str(tmp_path / "x.sqlite"),
                  "--neo4j-url", "http://127.0.0.1:1")
    assert out.returncode == 2, f"bad policy: {out.returncode}\n{out.stdout}\n{out.stderr}"
    out = run_cli("check", "--sqlite", str(tmp_path / "no" / "such" / "dir" / "x.sqlite"),
                  "--neo4j-url", "http://127.0.0.1:1")
    assert out.returncode == 2, f"bad SQLite path: {out.returncode}\n{out.stdout}\n{out.stderr}"
