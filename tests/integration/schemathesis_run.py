"""Schemathesis against openapi/openapi.yaml and a live gateway on the real
Neo4j (issue 13, item 4): every operation, raw statements on, API keys off
(loopback), every check (`--checks all`: server errors, status codes,
content types, headers, response schemas, negative and positive data,
and the rest). A CI leg of scripts/test.sh.

Deterministic generation (`--generation-deterministic`, one worker), so a
run is reproducible. BISTORE_SCHEMATHESIS_EXAMPLES examples per operation
(default 600: about 13,000 cases in about 4 minutes here); the test
asserts at least BISTORE_SCHEMATHESIS_MIN_CASES cases (10,000) and no
failure of any check. tests/integration/schemathesis.toml gives, per
operation and with the reason for each, the statuses the
positive_data_acceptance check also takes for schema-valid input the
gateway cannot know is wrong (a cursor it never gave out, an If-Match it
is not at, a ref no create names, a property key OpenAPI 3.0 cannot
constrain); nothing else is relaxed. The run's figures (cases, failures
per check, seconds, warnings) are printed; the CLI's output
(schemathesis.out) and the JUnit report (schemathesis-report/) are left in
the test's tmp directory.

Named so that `pytest tests/integration` does not collect it (it takes
minutes): `python3 -m pytest tests/integration/schemathesis_run.py`.
"""

import faulthandler
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT = 1800  # seconds for the whole run: a hang, not a slow run
ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.yaml"
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
EXAMPLES = int(os.environ.get("BISTORE_SCHEMATHESIS_EXAMPLES", "600"))
MIN_CASES = int(os.environ.get("BISTORE_SCHEMATHESIS_MIN_CASES", "10000"))


def st_command():
    exe = shutil.which("st") or shutil.which("schemathesis")
    if exe is None:
        pytest.fail("schemathesis is not installed (scripts/deps.sh installs it)", pytrace=False)
    return exe


def figures(out):
    """(cases generated, {failure kind: count}, [warnings]) from the CLI's summary."""
    m = re.search(r"Test cases:\s*\n\s*(\d+) generated", out)
    cases = int(m.group(1)) if m else 0
    fails = {}
    sec = re.search(r"\nFailures:[ \t]*\n((?:[ \t]+\S.*\n)+)", out)
    if sec:
        for line in sec.group(1).splitlines():
            fm = re.match(r"\s*\S+\s+(ST\d+ .+?): (\d+)\s*$", line)
            if fm:
                fails[fm.group(1)] = int(fm.group(2))
    warnings = []
    sec = re.search(r"\nWarnings:[ \t]*\n((?:[ \t]+\S.*\n)+)", out)
    if sec:
        warnings = [line.strip() for line in sec.group(1).splitlines() if line.strip()]
    # The operations a warning names, from its own section.
    sec = re.search(r"= WARNINGS =+\n(.*?)\n=+ SUMMARY", out, re.S)
    if sec:
        warnings += [f"  {line.strip()}" for line in sec.group(1).splitlines()
                     if line.strip().startswith("- ")]
    return cases, fails, warnings


def test_schemathesis_all_checks(gateway_factory, tmp_path, capsys):
    gw = gateway_factory(args=("--allow-raw-statements",))
    cmd = [st_command(), "--config-file", str(CONFIG), "run", str(SPEC), "--url", gw.url,
           "--checks", "all", "--max-examples", str(EXAMPLES), "--generation-deterministic",
           "--continue-on-failure", "--workers", "1", "--no-color",
           "--report", "junit", "--report-dir", str(tmp_path / "schemathesis-report")]
    # The run takes minutes by design: move pytest's stack dump
    # (faulthandler_timeout, 300 s in pytest.ini) past its own timeout.
    faulthandler.dump_traceback_later(TIMEOUT + 60, exit=False, file=sys.__stderr__)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=TIMEOUT)
    seconds = time.monotonic() - start
    out = proc.stdout + proc.stderr
    (tmp_path / "schemathesis.out").write_text(out)
    cases, fails, warnings = figures(out)
    # The figures go to the terminal whether the test passes or not (CI runs pytest -q).
    with capsys.disabled():
        print(f"\nschemathesis: {cases} cases, {EXAMPLES} examples per operation, "
              f"{seconds:.0f} s, exit {proc.returncode}")
        for kind, n in sorted(fails.items()):
            print(f"schemathesis failures: {kind}: {n}")
        print(f"schemathesis failures in all: {sum(fails.values())} (of every check)")
        for w in warnings:
            print(f"schemathesis warning: {w}")
    if "Configuration:" not in out or str(CONFIG) not in out:
        pytest.fail(f"schemathesis did not load {CONFIG}:\n{out[-5000:]}", pytrace=False)
    if proc.returncode != 0 or fails:
        pytest.fail(f"schemathesis found failures (exit {proc.returncode}):\n{out[-20000:]}",
                    pytrace=False)
    assert cases >= MIN_CASES, f"only {cases} cases ran (want >= {MIN_CASES})"
