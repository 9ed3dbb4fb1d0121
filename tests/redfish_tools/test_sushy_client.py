"""OpenStack's sushy (Ironic's Redfish client) reads the simulated BMCs: the service root, the
ComputerSystem each lists (at its make's path), identity and power, and the host interfaces'
MACs, over sessions (or Basic where the BMC has none); the gateway's answer for the same server
is what sushy read."""

import pytest
import sushy
from sushy import auth as sushy_auth

from conftest import PASSWORD, USERNAME, make


class NoInternet:
    """sushy downloads public message registries with this connector: refused, loopback only."""

    def get(self, *args, **kwargs):
        raise RuntimeError(f"no download off this machine: {args!r}")


def client(demo, server, auth):
    return sushy.Sushy(
        demo.bmc_url(server), auth=auth, verify=demo.ca, public_connector=NoInternet(),
        server_side_retries=1, server_side_retries_delay=1,
    )


SYSTEM_ID = {"hpe": "1", "dell": "System.Embedded.1", "supermicro": "1", "lenovo": "1",
             "other": "system"}


@pytest.mark.parametrize("make_name", ["hpe", "dell", "cisco", "supermicro", "lenovo", "other"])
def test_sushy_reads_the_system_and_its_macs_and_the_gateway_agrees(demo, make_name):
    server = demo.server(make_name)
    auth = (sushy_auth.BasicAuth if make_name == "other" else sushy_auth.SessionAuth)(
        username=USERNAME, password=PASSWORD)
    root = client(demo, server, auth)
    systems = root.get_system_collection()
    assert len(systems.members_identities) == 1
    system = systems.get_members()[0]
    want_id = SYSTEM_ID.get(make_name, server["serial_number"])
    assert system.identity == want_id
    assert system.path == f"/redfish/v1/Systems/{want_id}"
    assert system.serial_number == server["serial_number"]
    assert system.model == server["model"]
    assert str(system.power_state.value).lower() == server["power_state"]
    sushy_macs = [nic.mac_address.lower() for nic in system.ethernet_interfaces.get_members()]
    answer = demo.lookup(server["name"])
    assert answer["bmc"]["redfish_system"] == system.path
    assert answer["vendor"] == make_name
    gateway_macs = [n["mac"] for n in answer["nics"]]
    assert gateway_macs == [n["mac"] for n in server["nics"]]
    if make_name in ("supermicro", "lenovo"):
        # These show MACs only under the chassis' network adapters: sushy's EthernetInterfaces
        # are empty, the gateway read the ports.
        assert sushy_macs == []
    else:
        assert sushy_macs == gateway_macs
    if isinstance(auth, sushy_auth.SessionAuth):
        assert auth.get_session_key(), "sushy holds a session token"
        auth.close()
