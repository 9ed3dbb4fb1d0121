"""Cisco's own SDK (ucsmsdk) against the UCS Manager simulator.

Proves the simulator speaks the real XML API: ucsmsdk logs in (aaaLogin, then the
networkElement and topSystem probes it makes), queries service profiles by class with eq and
case-insensitive regex filters, reads their vNIC children and CIMC addresses the way Cisco's
KVM launcher does, resolves dns, and logs out. Every value is compared with the simulator's
inventory, and with the gateway's answer for the same server.
"""

import json
import urllib.request
from urllib.parse import urlparse

import pytest
from ucsmsdk.ucsexception import UcsException
from ucsmsdk.ucshandle import UcsHandle


def _handle(stack, password=None):
    url = urlparse(stack.ucsm)
    # ucsmsdk does not verify TLS at all (bare SSLContext), so the simulator's CA is moot here.
    return UcsHandle(
        url.hostname,
        stack.username,
        password or stack.password,
        port=url.port,
        secure=url.scheme == "https",
    )


@pytest.fixture(scope="module")
def ucs(stack):
    handle = _handle(stack)
    assert handle.login()
    yield handle
    assert handle.logout()


@pytest.fixture(scope="module")
def inventory(stack):
    servers = stack.inventory(stack.ucsm)
    assert servers, "the simulator serves no UCS servers"
    return servers


def _counters(stack):
    with urllib.request.urlopen(f"{stack.ucsm}/_sim/counters", context=stack.ssl) as r:
        return json.loads(r.read())["endpoints"]


def _profile(ucs, name):
    sps = ucs.query_classid("lsServer", filter_str=f'(name, "{name}", type="eq")')
    # Templates share the class and can share the name (in another org); they are not servers.
    instances = [sp for sp in sps if sp.type == "instance"]
    assert len(instances) == 1, [sp.dn for sp in sps]
    return instances[0]


def _vnic_macs(ucs, sp):
    vnics = ucs.query_children(in_mo=sp, class_id="vnicEther")
    vnics.sort(key=lambda v: (int(v.order), v.name))
    macs = []
    for vnic in vnics:
        if vnic.addr == "derived":
            # The burned-in MAC lives on the adapter's host-eth-if the vNIC is placed on.
            eth_if = ucs.query_dn(vnic.equipment_dn)
            assert eth_if is not None, vnic.equipment_dn
            macs.append(eth_if.mac.lower())
        else:
            macs.append(vnic.addr.lower())
    return vnics, macs


def _cimc_ip(ucs, sp):
    """The order Cisco's KVM launcher uses: the profile's own IP, else the CIMC's mgmt/if-1."""
    addrs = ucs.query_children(in_mo=sp, class_id="vnicIpV4Addr")
    usable = [a.addr for a in addrs if a.addr and a.addr != "0.0.0.0"]
    if usable:
        return usable[0], "profile"
    mgmt = ucs.query_dn(f"{sp.pn_dn}/mgmt/if-1")
    assert mgmt is not None and mgmt.admin_state == "enable"
    return mgmt.ext_ip, "mgmtIf"


def test_login_sees_a_ucs_manager(stack, ucs):
    assert ucs.cookie
    assert ucs.version is not None and str(ucs.version).startswith("4.2")
    assert ucs.query_dn("sys").get_class_id() == "TopSystem"
    assert len(ucs.query_classid("networkElement")) == 2
    counters = _counters(stack)
    assert counters.get("aaaLogin", 0) >= 1


def test_every_profile_matches_the_inventory(ucs, inventory):
    paths = set()
    for server in inventory:
        sp = _profile(ucs, server["name"])
        assert sp.name == server["name"]
        assert sp.assoc_state == "associated"
        vnics, macs = _vnic_macs(ucs, sp)
        assert [v.name for v in vnics] == [n["name"] for n in server["nics"]]
        assert macs == [n["mac"] for n in server["nics"]]
        boot = next((m for v, m in zip(vnics, macs) if v.boot_dev == "enabled"), macs[0])
        want_boot = next((n["mac"] for n in server["nics"] if n["boot"]), server["nics"][0]["mac"])
        assert boot == want_boot
        ip, path = _cimc_ip(ucs, sp)
        paths.add(path)
        assert ip == server["bmc_address"]
        physical = ucs.query_dn(sp.pn_dn)
        assert physical.get_class_id() in ("ComputeBlade", "ComputeRackUnit")
        assert physical.assigned_to_dn == sp.dn
        assert physical.serial == server["serial_number"]
        assert physical.model == server["model"]
        assert physical.oper_power == server["power_state"]
    assert paths == {"profile", "mgmtIf"}, "both CIMC address paths must be exercised"


def test_case_insensitive_regex_filter_and_hierarchy(ucs, inventory):
    name = inventory[2]["name"]
    found = ucs.query_classid(
        "lsServer", filter_str=f'(name, "^{name.upper()}$", type="re", flag="I") and (type, "instance", type="eq")'
    )
    assert [sp.name for sp in found] == [name]
    # hierarchy=True returns the profile with its children, which the SDK flattens.
    tree = ucs.query_classid("lsServer", filter_str=f'(name, "{name}", type="eq")', hierarchy=True)
    classes = {mo.get_class_id() for mo in tree}
    assert {"LsServer", "VnicEther"} <= classes
    assert ucs.query_classid("lsServer", filter_str='(name, "no-such-sp", type="eq")') == []
    assert ucs.query_dn("org-root/ls-no-such-sp") is None


def test_bad_password_is_551(stack):
    handle = _handle(stack, password="not-the-password")
    with pytest.raises(UcsException) as err:
        handle.login()
    assert str(err.value.error_code) == "551"


def test_logout_kills_the_cookie(stack):
    handle = _handle(stack)
    assert handle.login()
    cookie = handle.cookie
    assert handle.logout()
    body = f'<configResolveDn cookie="{cookie}" dn="sys" inHierarchical="false"/>'.encode()
    req = urllib.request.Request(f"{stack.ucsm}/nuova", data=body, method="POST")
    with urllib.request.urlopen(req, context=stack.ssl) as r:
        assert r.status == 200
        assert b'errorCode="552"' in r.read()


def test_the_gateway_agrees_with_the_sdk(stack, ucs, inventory):
    for server in inventory[:6]:
        sp = _profile(ucs, server["name"])
        _, macs = _vnic_macs(ucs, sp)
        ip, _ = _cimc_ip(ucs, sp)
        record = stack.gateway_record(server["name"].upper(), vendor="cisco")
        assert record["name"] == server["name"]
        assert record["system"] == "ucsm"
        assert record["system_id"] == sp.dn
        assert [n["mac"] for n in record["nics"]] == macs
        assert record["bmc"]["address"] == ip
        assert record["bmc"]["kind"] == "cimc"
        assert record["serial_number"] == server["serial_number"]
        assert record["power_state"] == server["power_state"]
