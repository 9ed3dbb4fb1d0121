"""The gateway's Redfish backend against sushy-tools' emulator (its fake driver, as OpenStack's
own CI runs it): a Redfish service written by others, with three systems behind one service,
HTTP Basic only (no SessionService), systems at `/redfish/v1/Systems/<uuid>` and MACs as the
interfaces' ids. The gateway must find every system the emulator serves, by the name it gives
(no HostName or serial number there: its `Name`), with exactly the MACs it serves, both live
and from a sweep."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from conftest import binary

USER = "emu-admin"
PASSWORD = "emu-password"
SYSTEMS = [
    ("11111111-1111-4111-8111-111111111111", "node-1", "On",
     ["52:54:00:00:01:01", "52:54:00:00:01:02"]),
    ("22222222-2222-4222-8222-222222222222", "node-2", "Off", ["52:54:00:00:02:01"]),
    ("33333333-3333-4333-8333-333333333333", "node-3", "On", ["52:54:00:00:03:01"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, proc, headers=None, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def call(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=body)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    work = tmp_path_factory.mktemp("sushy-emulator")
    (work / "state").mkdir()
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    (work / "htpasswd").write_text(f"{USER}:{hashed}\n")
    port = free_port()
    systems = [
        {"uuid": uuid, "name": name, "power_state": power, "external_notifier": False,
         "nics": [{"mac": mac, "ip": f"192.0.2.{i}"} for i, mac in enumerate(macs, 10)]}
        for uuid, name, power, macs in SYSTEMS
    ]
    (work / "emulator.conf").write_text(
        f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = '{work / 'htpasswd'}'\n"
        f"SUSHY_EMULATOR_STATE_DIR = '{work / 'state'}'\n"
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        "EXTERNAL_NOTIFICATION_URL = 'http://127.0.0.1:9'\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n"
    )
    exe = Path(sys.executable).parent / "sushy-emulator"
    env = dict(os.environ, SUSHY_EMULATOR_CONFIG=str(work / "emulator.conf"))
    proc = subprocess.Popen(
        [str(exe), "--config", str(work / "emulator.conf"), "--fake", "-i", "127.0.0.1",
         "-p", str(port)],
        env=env, stdout=open(work / "emulator.log", "w"), stderr=subprocess.STDOUT)
    wait_for(f"http://127.0.0.1:{port}/redfish/v1/", proc)
    yield port
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def gateway(emulator, tmp_path_factory):
    work = tmp_path_factory.mktemp("gateway")
    port = free_port()
    (work / "gateway.toml").write_text(
        "[auth]\nenabled = false\n\n"
        f"[server]\nlisten = \"127.0.0.1:{port}\"\n\n"
        "[fleet]\nfirst_sweep_after = \"1h\"\n\n"
        "[[systems]]\nname = \"sushy\"\nkind = \"redfish\"\n"
        f"[systems.bmc]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
        f"scheme = \"http\"\nport = {emulator}\n"
        "[[systems.bmcs]]\naddress = \"127.0.0.1\"\n"
    )
    proc = subprocess.Popen(
        [binary(), "serve", "--config", str(work / "gateway.toml")],
        stdout=open(work / "gateway.log", "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/readyz", proc)
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def test_every_system_the_emulator_serves_is_found_with_its_macs(gateway):
    for uuid, name, power, macs in SYSTEMS:
        status, record = call("GET", f"{gateway}/servers/{name}")
        assert status == 200
        assert record["name"] == name
        assert record["system"] == "redfish"
        assert record["vendor"] == "other"  # Manufacturer "Sushy Emulator"
        assert [n["mac"] for n in record["nics"]] == macs
        assert record["boot_mac"] == macs[0]
        assert record["power_state"] == power.lower()
        assert record["bmc"]["address"] == "127.0.0.1"
        assert record["bmc"]["redfish_system"] == f"/redfish/v1/Systems/{uuid}"
        assert record["bmc"]["answered"] is True


def test_a_sweep_indexes_the_emulators_systems_and_reverse_lookups_find_them(gateway):
    status, _ = call("POST", f"{gateway}/fleet/sweep")
    assert status == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, fleet = call("GET", f"{gateway}/fleet")
        system = fleet["systems"][0]
        if system["indexed"] is not None and not system["sweeping"]:
            break
        time.sleep(0.1)
    assert system["indexed"] == 3, system
    _, listing = call("GET", f"{gateway}/servers?system=sushy")
    got = {s["name"]: [n["mac"] for n in s["nics"]] for s in listing["servers"]}
    assert got == {name: macs for _, name, _, macs in SYSTEMS}
    _, by_mac = call("GET", f"{gateway}/servers?mac=52-54-00-00-02-01")
    assert [s["name"] for s in by_mac["servers"]] == ["node-2"]
