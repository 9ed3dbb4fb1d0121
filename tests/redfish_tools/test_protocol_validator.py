"""DMTF's redfish-protocol-validator against each simulated BMC make: DSP0266's protocol rules
(methods and their status codes, headers, query parameters, sessions, Basic authentication,
ETags, accounts and roles, error bodies). Every make with sessions must pass with no failure;
the Basic-only make fails exactly the assertions that require sessions (it exists to prove the
gateway's fallback to Basic), and nothing else."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PASSWORD, USERNAME, make

HERE = Path(__file__).resolve().parent

# A service without SessionService cannot pass these (DSP0266 requires sessions); the
# simulated OpenBMC-style BMC leaves sessions out on purpose.
REQUIRE_SESSIONS = {
    "PROTO_HTTP_SUPPORTED_METHODS",
    "REQ_HEADERS_AUTHORIZATION",
    "REQ_POST_CREATE_TO_MEMBERS_PROP",
    "REQ_POST_CREATE_VIA_COLLECTION",
    "SEC_BASIC_AUTH_STANDALONE",
    "SEC_BOTH_AUTH_TYPES",
    "SEC_REQUIRE_LOGIN_SESSIONS",
    "SEC_SESSIONS_URI_LOCATION",
    "SEC_SUPPORT_BASIC_AUTH",
    "SEC_WRITE_REQUIRES_AUTH",
}


def run_validator(demo, server, report_dir: Path):
    env = dict(os.environ, REQUESTS_CA_BUNDLE=demo.ca, CURL_CA_BUNDLE=demo.ca)
    cmd = [
        sys.executable, str(HERE / "protocol_validator.py"),
        "--rhost", demo.bmc_url(server), "-u", USERNAME, "-p", PASSWORD,
        "--report-dir", str(report_dir), "--ca-bundle", demo.ca,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    results = report_dir / "results.json"
    assert results.exists(), f"the validator wrote no report:\n{done.stdout}\n{done.stderr}"
    counts = json.loads(results.read_text())["TestResults"]["Protocol Validations"]
    failed = set()
    for tsv in report_dir.glob("*.tsv"):
        for line in tsv.read_text().splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) > 4 and cols[4] == "FAIL":
                failed.add((cols[0], cols[5] if len(cols) > 5 else ""))
    print(f"\n{make(server['model'])} BMC {server['bmc_address']}: {counts}")
    return counts, failed


@pytest.mark.parametrize("make_name", ["hpe", "dell", "cisco", "supermicro", "lenovo"])
def test_a_bmc_with_sessions_passes_every_assertion(demo, make_name, tmp_path):
    counts, failed = run_validator(demo, demo.server(make_name), tmp_path)
    assert counts["fail"] == 0, sorted(failed)
    assert counts["pass"] >= 250, counts


def test_the_basic_only_bmc_fails_only_what_requires_sessions(demo, tmp_path):
    counts, failed = run_validator(demo, demo.server("other"), tmp_path)
    assert {a for a, _ in failed} <= REQUIRE_SESSIONS, sorted(failed)
    assert counts["pass"] >= 200, counts
