"""Shared fixture for the vendor-SDK conformance tests.

Starts the real binary in demo mode (the simulators over HTTPS plus the gateway; UCS Central on
127.0.0.2:443, the only port Cisco's ucscsdk connects to; the Intersight simulator told the
public halves of API keys generated here, whose private halves Cisco's intersight SDK signs
with), and hands the tests the URLs, the simulators' CA and the credentials. The official vendor SDKs are
then pointed at the simulators, and their answers compared with the gateway's.
"""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import ssl
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USERNAME = "admin"
PASSWORD = "sim-password"
# The demo gateway requires a bearer token; this one is handed to it with --token.
TOKEN = "sdk-tests-token-0123456789abcdef"
# ucscsdk refuses any port but 443, so UCS Central gets a loopback address of its own.
CENTRAL_HOST = "127.0.0.2"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary() -> str:
    explicit = os.environ.get("IGW_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "inventory-gateway"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("build the binary first (cargo build) or set IGW_BIN")


def _get(url: str, ctx=None, timeout=2.0, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
        return r.status, r.read()


def _api_keys(directory: Path) -> dict:
    """Intersight API keys as Intersight hands them out: RSA (PKCS#1 PEM) and EC P-256 (PKCS#8
    and SEC1 PEM). Returns {key_id: (private key path, key type)}; public halves next to them."""
    from Crypto.PublicKey import ECC, RSA

    keys = {}
    rsa = RSA.generate(2048)
    ec = ECC.generate(curve="P-256")
    ec_sec1 = ECC.generate(curve="P-256")
    for key_id, private_pem, public_pem, kind in [
        ("sdk/rsa/pkcs1", rsa.export_key("PEM"), rsa.publickey().export_key("PEM"), "rsa"),
        ("sdk/ec/pkcs8", ec.export_key(format="PEM").encode(),
         ec.public_key().export_key(format="PEM").encode(), "ec"),
        ("sdk/ec/sec1", ec_sec1.export_key(format="PEM", use_pkcs8=False).encode(),
         ec_sec1.public_key().export_key(format="PEM").encode(), "ec"),
    ]:
        stem = key_id.replace("/", "-")
        (directory / f"{stem}.pem").write_bytes(private_pem)
        (directory / f"{stem}.pub.pem").write_bytes(public_pem)
        keys[key_id] = (str(directory / f"{stem}.pem"), kind)
    return keys


class Stack:
    def __init__(self, gateway, oneview, ucsm, ome, ucs_central, intersight, api_keys, ca_file):
        self.gateway = gateway
        self.oneview = oneview
        self.ucsm = ucsm
        self.ome = ome
        self.ucs_central = ucs_central
        self.intersight = intersight
        # {key_id: (private key path, "rsa" | "ec")}, each accepted by the Intersight simulator.
        self.api_keys = api_keys
        self.ca_file = ca_file
        self.username = USERNAME
        self.password = PASSWORD
        self.ssl = ssl.create_default_context(cafile=ca_file)

    def inventory(self, base):
        status, body = _get(f"{base}/_sim/inventory", self.ssl)
        assert status == 200
        return json.loads(body)["servers"]

    def gateway_record(self, name, vendor=None):
        query = f"?vendor={vendor}" if vendor else ""
        status, body = _get(f"{self.gateway}/servers/{name}{query}", timeout=10.0, token=TOKEN)
        assert status == 200
        return json.loads(body)


@pytest.fixture(scope="session")
def stack():
    ports = {k: _free_port() for k in ("gateway", "oneview", "ucsm", "ome", "intersight")}
    key_dir = Path(tempfile.mkdtemp(prefix="igw-sdk-keys-"))
    api_keys = _api_keys(key_dir)
    key_args = []
    for key_id, (path, _) in api_keys.items():
        key_args += ["--intersight-public-key", f"{key_id}={path[:-4]}.pub.pem"]
    cmd = [
        _binary(), "demo", "--tls", "--servers", "20", "--seed", "7",
        "--port", str(ports["gateway"]), "--token", TOKEN,
        # Sweeps would add calls to the counters the SDK tests read.
        "--no-fleet",
        "--oneview-port", str(ports["oneview"]),
        "--ucsm-port", str(ports["ucsm"]),
        "--ome-port", str(ports["ome"]),
        "--ucs-central-bind", CENTRAL_HOST, "--ucs-central-port", "443",
        "--intersight-port", str(ports["intersight"]), "--redfish-bmcs", "0", *key_args,
    ]
    log = tempfile.NamedTemporaryFile(prefix="igw-demo-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    urls = {k: f"https://127.0.0.1:{p}" for k, p in ports.items() if k != "gateway"}
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 60
    ca_pem = None
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited early with {proc.returncode}; see {log.name}")
        try:
            _get(f"{gateway}/readyz")
            # Fetching the CA itself needs no trust; everything after it is verified.
            _, ca_pem = _get(f"{urls['oneview']}/_sim/ca.pem", insecure)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"demo did not come up within 60 s; see {log.name}")
            time.sleep(0.1)
    ca_file = Path(tempfile.mkdtemp(prefix="igw-sdk-")) / "sim-ca.pem"
    ca_file.write_bytes(ca_pem)
    yield Stack(
        gateway, urls["oneview"], urls["ucsm"], urls["ome"], f"https://{CENTRAL_HOST}:443",
        urls["intersight"], api_keys, str(ca_file),
    )
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert proc.returncode == 0, f"demo exited with {proc.returncode}; see {log.name}"
