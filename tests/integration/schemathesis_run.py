"""Schemathesis against openapi/openapi.yaml and a live gateway on the real
Neo4j (issue 13, item 4): every operation, raw statements on, API keys off
(loopback), all checks (not_a_server_error, status code, content type and
response schema conformance, and the rest of `-c all`).

Deterministic generation (`--generation-deterministic`), so a CI run is
reproducible. Examples per operation: BISTORE_SCHEMATHESIS_EXAMPLES (default
100, which runs >= 10,000 cases in all); more cases: raise it. The run's
figures (cases, failures per check) are printed; the report is left in the
test's tmp directory (schemathesis-report/).

Named so that `pytest tests/integration` does not collect it (it takes
minutes): CI runs it as a leg of its own, `python3 -m pytest
tests/integration/schemathesis_run.py`.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.yaml"
EXAMPLES = int(os.environ.get("BISTORE_SCHEMATHESIS_EXAMPLES", "100"))
MIN_CASES = int(os.environ.get("BISTORE_SCHEMATHESIS_MIN_CASES", "10000"))


def st_command():
    exe = shutil.which("st") or shutil.which("schemathesis")
    if exe is None:
        pytest.fail("schemathesis is not installed (scripts/deps.sh installs it)", pytrace=False)
    return exe


def figures(out):
    """(cases generated, {failure kind: count}) from the CLI's summary."""
    m = re.search(r"Test cases:\s*\n\s*(\d+) generated", out)
    cases = int(m.group(1)) if m else 0
    fails = {}
    sec = re.search(r"\nFailures:\s*\n((?:\s+\S.*\n)+)", out)
    if sec:
        for line in sec.group(1).splitlines():
            fm = re.match(r"\s*\S+\s+(ST\d+ .+?): (\d+)\s*$", line)
            if fm:
                fails[fm.group(1)] = int(fm.group(2))
    return cases, fails


def test_schemathesis_all_checks(gateway_factory, tmp_path):
    gw = gateway_factory(args=("--allow-raw-statements",))
    cmd = [st_command(), "run", str(SPEC), "--url", gw.url, "--checks", "all",
           "--max-examples", str(EXAMPLES), "--generation-deterministic",
           "--continue-on-failure", "--workers", "1", "--no-color",
           "--report", "junit", "--report-dir", str(tmp_path / "schemathesis-report")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=1800)
    out = proc.stdout + proc.stderr
    cases, fails = figures(out)
    print(f"schemathesis: {cases} cases, {EXAMPLES} examples per operation, "
          f"exit {proc.returncode}")
    for kind, n in sorted(fails.items()):
        print(f"schemathesis failures: {kind}: {n}")
    print(f"schemathesis failures in all: {sum(fails.values())}")
    if proc.returncode != 0:
        pytest.fail(f"schemathesis found failures (exit {proc.returncode}):\n{out[-20000:]}",
                    pytrace=False)
    assert cases >= MIN_CASES, f"only {cases} cases ran (want >= {MIN_CASES})"
