"""HPE's own `hpeOneView` SDK against the OneView simulator, and the gateway against both.

Proves the simulator speaks the protocol the real appliance does (as far as the official client
can tell): version check, login, filtered lookups, hardware by URI, session adoption, expiry and
logout. The SDK pins TLS 1.2 and verifies against `ssl_certificate`, so this also covers the
simulator's TLS. Run: `pip install -r tests/sdk/requirements.txt && pytest tests/sdk`.
"""

import json
import urllib.parse
import urllib.request

import pytest

from hpeOneView.exceptions import HPEOneViewException
from hpeOneView.oneview_client import OneViewClient

API_VERSION = 4000


def _client(stack, **overrides):
    config = {
        "ip": urllib.parse.urlsplit(stack.oneview).netloc,
        "credentials": {"userName": stack.username, "password": stack.password},
        "api_version": API_VERSION,
        "ssl_certificate": stack.ca_file,
        "timeout": 10,
    }
    config.update(overrides)
    return OneViewClient(config)


def _sim(stack, method, path):
    req = urllib.request.Request(f"{stack.oneview}{path}", method=method)
    with urllib.request.urlopen(req, timeout=5, context=stack.ssl) as r:
        body = r.read()
        return json.loads(body) if body else None


def _counter(stack, key):
    return _sim(stack, "GET", "/_sim/counters")["endpoints"].get(key, 0)


def _ethernet(profile):
    connections = (profile.get("connectionSettings") or {}).get("connections")
    if connections is None:
        connections = profile.get("connections") or []
    eth = [c for c in connections if c["functionType"] == "Ethernet" and c.get("mac")]
    return sorted(eth, key=lambda c: c["id"])


def _boot_mac(ethernet):
    primary = [c for c in ethernet if (c.get("boot") or {}).get("priority") == "Primary"]
    chosen = primary[0] if primary else (ethernet[0] if ethernet else None)
    return chosen["mac"].lower() if chosen else None


@pytest.fixture(scope="module")
def client(stack):
    c = _client(stack)
    yield c
    try:
        c.connection.logout()
    except HPEOneViewException:
        pass  # a test below logs it out or expires it on purpose


def test_sdk_reads_what_the_inventory_says(stack, client):
    inventory = stack.inventory(stack.oneview)
    assert inventory, "the demo fleet is empty"
    for server in inventory:
        profile = client.server_profiles.get_by_name(server["name"])
        assert profile is not None, server["name"]
        data = profile.data
        assert data["name"] == server["name"]
        eth = _ethernet(data)
        assert [c["mac"].lower() for c in eth] == [n["mac"] for n in server["nics"]]
        assert [c["name"] or c["portId"] for c in eth] == [n["name"] for n in server["nics"]]
        boot = next((n["mac"] for n in server["nics"] if n["boot"]), server["nics"][0]["mac"])
        assert _boot_mac(eth) == boot

        hardware = client.server_hardware.get_by_uri(data["serverHardwareUri"]).data
        addresses = hardware["mpHostInfo"]["mpIpAddresses"]
        assert addresses[0]["type"] == "LinkLocal", "real appliances list link-local first"
        assert [a["address"] for a in addresses if a["type"] == "Static"] == [server["bmc_address"]]
        assert hardware["serialNumber"] == server["serial_number"]
        assert hardware["model"] == server["model"]
        assert hardware["powerState"].lower() == server["power_state"]
        assert hardware["serverProfileUri"] == data["uri"]


def test_gateway_answers_what_the_sdk_reads(stack, client):
    for server in stack.inventory(stack.oneview)[:8]:
        data = client.server_profiles.get_by_name(server["name"]).data
        hardware = client.server_hardware.get_by_uri(data["serverHardwareUri"]).data
        record = stack.gateway_record(server["name"].upper(), vendor="hpe")
        eth = _ethernet(data)
        assert record["name"] == data["name"]
        assert record["system"] == "oneview"
        assert record["system_id"] == data["uri"]
        assert [n["mac"] for n in record["nics"]] == [c["mac"].lower() for c in eth]
        assert [n["name"] for n in record["nics"]] == [c["name"] or c["portId"] for c in eth]
        assert record["boot_mac"] == _boot_mac(eth)
        static = [a["address"] for a in hardware["mpHostInfo"]["mpIpAddresses"] if a["type"] == "Static"]
        assert record["bmc"]["address"] == static[0]
        assert record["bmc"]["kind"] == hardware["mpModel"].lower()
        assert record["serial_number"] == hardware["serialNumber"]
        assert record["model"] == hardware["model"]
        assert record["power_state"] == hardware["powerState"].lower()


def test_sdk_lookups_are_case_insensitive_and_filters_are_encoded(stack, client):
    server = stack.inventory(stack.oneview)[0]
    profile = client.server_profiles.get_by_name(server["name"].upper())
    assert profile is not None and profile.data["name"] == server["name"]
    assert client.server_profiles.get_by_name(server["name"] + "-nope") is None

    hardware = client.server_hardware.get_by_uri(profile.data["serverHardwareUri"]).data
    # Blade names hold ", bay N": spaces and commas must survive the SDK's percent-encoding.
    assert ", bay " in hardware["name"]
    found = client.server_hardware.get_by("name", hardware["name"])
    assert [h["uri"] for h in found] == [hardware["uri"]]


def test_sdk_matches_filter(stack, client):
    names = sorted(s["name"] for s in stack.inventory(stack.oneview))
    prefix = names[0][:-1]
    expected = sorted(n for n in names if n.startswith(prefix) and len(n) == len(names[0]))
    got = client.server_profiles.get_all(filter=f"\"name matches '{prefix}_'\"")
    assert sorted(p["name"] for p in got) == expected


def test_sdk_negotiates_the_api_version_without_one_configured(stack):
    c = _client(stack, api_version=None)
    version = _sim(stack, "GET", "/rest/version")
    assert c.api_version == version["currentVersion"]
    server = stack.inventory(stack.oneview)[2]
    assert c.server_profiles.get_by_name(server["name"]).data["name"] == server["name"]
    c.connection.logout()


def test_sdk_refused_api_version_and_password(stack):
    with pytest.raises(HPEOneViewException):
        _client(stack, api_version=99999)
    with pytest.raises(HPEOneViewException) as refused:
        _client(stack, credentials={"userName": stack.username, "password": "wrong"})
    assert refused.value.oneview_response["errorCode"].startswith("AUTHN")


def test_sdk_adopts_a_session_then_sees_it_expire_while_the_gateway_recovers(stack):
    first = _client(stack)
    session_id = first.connection.get_session_id()
    adopted = _client(stack, credentials={"sessionID": session_id})
    server = stack.inventory(stack.oneview)[1]
    assert adopted.server_profiles.get_by_name(server["name"]) is not None

    stack.gateway_record(server["name"], vendor="hpe")
    _sim(stack, "POST", "/_sim/expire-sessions")
    with pytest.raises(HPEOneViewException) as expired:
        adopted.server_profiles.get_by_name(server["name"])
    assert expired.value.oneview_response["errorCode"] == "AUTHORIZATION"

    logins = _counter(stack, "POST /rest/login-sessions")
    record = stack.gateway_record(f"{server['name']}?refresh=true&vendor=hpe")
    assert record["name"] == server["name"]
    assert _counter(stack, "POST /rest/login-sessions") == logins + 1, "one re-login"


def test_sdk_logout_ends_the_session(stack):
    c = _client(stack)
    before = _counter(stack, "DELETE /rest/login-sessions")
    c.connection.logout()
    assert _counter(stack, "DELETE /rest/login-sessions") == before + 1
    with pytest.raises(HPEOneViewException) as after:
        c.server_profiles.get_by_name("anything")
    assert after.value.oneview_response["errorCode"] == "AUTHORIZATION"
