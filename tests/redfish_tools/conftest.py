"""Fixtures for the external Redfish tools: the demo (simulated BMCs over HTTPS beside the
gateway), and the BMCs it serves, each with its make. Everything listens on loopback."""

import json
import os
import re
import ssl
import subprocess
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "redfish-tools-token-0123456789abcdef"
USERNAME = "admin"
PASSWORD = "sim-password"


def binary() -> str:
    explicit = os.environ.get("IGW_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "inventory-gateway"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("build the binary first (cargo build) or set IGW_BIN")


def get_json(url, ca=None, token=None, timeout=10):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
        return json.loads(r.read())


def make(model: str) -> str:
    """The make a simulated BMC speaks, by model (as `sim::redfish::Flavour::of_model`)."""
    m = model.lower()
    if "proliant" in m or "synergy" in m:
        return "hpe"
    if "poweredge" in m:
        return "dell"
    if m.startswith("ucs"):
        return "cisco"
    if m.startswith("sys-"):
        return "supermicro"
    if "thinksystem" in m:
        return "lenovo"
    return "other"


class Demo:
    def __init__(self, proc, out, gateway, config, workdir):
        self.proc = proc
        self.out = out
        self.gateway = gateway
        self.config = config
        self.workdir = workdir
        redfish = next(s for s in config["systems"] if s["kind"] == "redfish")
        self.bmc_port = redfish["bmc"]["port"]
        self.ca = redfish["bmc"]["ca_bundle"]
        control = re.search(r"^\s+redfish\s+(\S+)", out, re.M).group(1)
        self.bmcs = get_json(f"{control.rstrip('/')}/_sim/inventory", self.ca)["servers"]

    def bmc_url(self, server) -> str:
        return f"https://{server['bmc_address']}:{self.bmc_port}"

    def server(self, make_name):
        return next(s for s in self.bmcs if make(s["model"]) == make_name)

    def lookup(self, name):
        return get_json(f"{self.gateway}/servers/{name}", token=TOKEN)


@pytest.fixture(scope="session")
def demo():
    workdir = Path(tempfile.mkdtemp(prefix="igw-redfish-tools-"))
    log = open(workdir / "demo.log", "w+")
    args = [binary(), "demo", "--tls", "--no-fleet", "--token", TOKEN, "--port", "0"]
    for flag in ("oneview", "ucsm", "ome", "ucs-central", "intersight", "redfish"):
        args += [f"--{flag}-port", "0"]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    out = ""
    while time.monotonic() < deadline:
        log.seek(0)
        out = log.read()
        if "Ctrl-C stops everything" in out:
            break
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited:\n{out}")
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"demo did not start:\n{out}")
    gateway = re.search(r"gateway\s+(http://\S+)", out).group(1)
    config_path = re.search(r"config\s+(\S+)", out).group(1)
    with open(config_path, "rb") as f:
        config = tomllib.load(f)
    yield Demo(proc, out, gateway, config, workdir)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
