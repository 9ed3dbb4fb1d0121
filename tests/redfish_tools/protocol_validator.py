"""DMTF's redfish-protocol-validator, unchanged except that its SSDP discovery (multicast to
239.255.255.250 / ff02::c, off this machine) is switched off: nothing may leave loopback."""

import sys

import redfish_protocol_validator.utils as utils

utils.discover_ssdp = lambda *args, **kwargs: {}

from redfish_protocol_validator.console_scripts import main  # noqa: E402

sys.exit(main())
