"""Cisco's own UCS Central SDK (ucscsdk) against the UCS Central simulator.

ucscsdk connects to https://<host>:443/xmlIM/central-mgr only, so the simulator runs on
127.0.0.2:443. The SDK logs in (aaaLogin, then the topSystem probe it makes), lists the
registered domains (computeSystem), queries service profiles by name with its own filters (eq,
and the case-insensitive regex it generates for flag="I"), resolves the profile's DN, and logs
out: the flow the replaced operator ran, minus its unfiltered lsServer listing. Every value is
compared with the simulator's inventory, and with the gateway's answer for the same server.
"""

import json
import urllib.request

import pytest
from ucscsdk.ucscexception import UcscException
from ucscsdk.ucschandle import UcscHandle

from conftest import CENTRAL_HOST


def _handle(stack, password=None):
    # The SDK's default (and only) port is 443; it does not verify TLS (bare SSLContext).
    return UcscHandle(CENTRAL_HOST, stack.username, password or stack.password)


@pytest.fixture(scope="module")
def central(stack):
    handle = _handle(stack)
    assert handle.login()
    yield handle
    assert handle.logout()


@pytest.fixture(scope="module")
def inventory(stack):
    servers = stack.inventory(stack.ucs_central)
    assert servers, "the UCS Central simulator serves no servers"
    return servers


def _counters(stack):
    with urllib.request.urlopen(
        f"{stack.ucs_central}/_sim/counters", context=stack.ssl
    ) as r:
        return json.loads(r.read())["endpoints"]


def _profile(central, name, kind="eq", flag="C"):
    sps = central.query_classid(
        "lsServer", filter_str=f'(name, "{name}", type="{kind}", flag="{flag}")'
    )
    instances = [sp for sp in sps if sp.type == "instance"]
    assert len(instances) == 1, [sp.dn for sp in sps]
    return instances[0]


def test_login_probes_the_central_top_system(central, stack):
    # The login itself asked for topSystem ("sys"), as ucscsdk always does.
    assert central.cookie
    assert central.refresh_period and int(central.refresh_period) > 60
    assert _counters(stack).get("configResolveDn", 0) >= 1


def test_domains_are_listed_with_their_addresses(central, stack):
    domains = central.query_classid("computeSystem")
    addresses = sorted(d.address for d in domains)
    assert len(addresses) >= 2, addresses
    assert all(a.startswith("127.0.1.") for a in addresses)


def test_profile_by_name_names_its_domain_and_dn_there(central, stack, inventory):
    registered = {d.address for d in central.query_classid("computeSystem")}
    for server in inventory[:6]:
        sp = _profile(central, server["name"])
        assert sp.name == server["name"]
        assert sp.domain in registered
        assert sp.ls_dn.endswith(f"/ls-{server['name']}")
        assert sp.domain_dn.startswith("compute/sys-")
        # Resolving the DN gives the same profile (what the old operator did next).
        again = central.query_dn(sp.dn)
        assert again is not None and again.name == sp.name and again.domain == sp.domain
        # The gateway reached the same domain and the same profile there.
        record = stack.gateway_record(server["name"], vendor="cisco")
        assert record["system"] == "ucs-central"
        assert record["system_id"] == f"{sp.domain}/{sp.ls_dn}"
        assert record["serial_number"] == server["serial_number"]
        assert record["bmc"]["address"] == server["bmc_address"]
        assert [n["mac"] for n in record["nics"]] == [n["mac"] for n in server["nics"]]


def test_case_insensitive_filter_finds_the_profile(central, inventory):
    # flag="I" makes ucscsdk send each letter as a [Xx] class: in a wcard (type="re") filter,
    # the anchored form the gateway itself sends. (With type="eq" the SDK puts the classes in
    # an `eq`, which compares literally: not something to build on.)
    name = inventory[1]["name"]
    sp = _profile(central, f"^{name.upper()}$", kind="re", flag="I")
    assert sp.name == name


def test_unfiltered_listing_holds_the_fleet_and_the_central_only_profiles(central, inventory):
    names = {sp.name for sp in central.query_classid("lsServer") if sp.type == "instance"}
    assert {s["name"] for s in inventory} <= names
    undeployed = [sp for sp in central.query_classid("lsServer") if sp.domain == ""]
    assert undeployed, "a global service profile deployed to no domain"


def test_unknown_dn_resolves_to_nothing(central):
    assert central.query_dn("org-root/ls-no-such-profile") is None


def test_wrong_password_is_refused(stack):
    handle = _handle(stack, password="wrong-password")
    with pytest.raises(UcscException) as err:
        handle.login()
    assert str(err.value.error_code) == "551"
