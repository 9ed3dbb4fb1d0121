//! How each make's BMC lays out the same facts: what its service root says, how it numbers its
//! ComputerSystem, Chassis and Manager, and where it shows the host NICs' MACs. Taken from the
//! vendors' public Redfish mockups and documentation: iLO `Systems/1`, iDRAC
//! `System.Embedded.1` / `iDRAC.Embedded.1`, a CIMC's system id is its serial number, OpenBMC
//! `system` / `chassis` / `bmc`; Supermicro and Lenovo XCC list ports under the chassis'
//! `NetworkAdapters` (`Ports` with `Ethernet.AssociatedMACAddresses`, the older `NetworkPorts`
//! with `AssociatedNetworkAddresses`).

/// Where a BMC shows its host's MAC addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacLocation {
    /// `Systems/<id>/EthernetInterfaces/<n>` with `MACAddress`.
    EthernetInterfaces,
    /// `Chassis/<id>/NetworkAdapters/<a>/Ports/<p>` with `Ethernet.AssociatedMACAddresses`
    /// (Port v1.4+); the system's `EthernetInterfaces` collection is empty.
    Ports,
    /// `Chassis/<id>/NetworkAdapters/<a>/NetworkPorts/<p>` with `AssociatedNetworkAddresses`
    /// (the deprecated NetworkPort schema).
    NetworkPorts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    Hpe,
    Dell,
    Cisco,
    Supermicro,
    Lenovo,
    /// An OpenBMC-based BMC of another make: no `Vendor` in its service root, and (in this
    /// simulator) no `SessionService`, so clients must fall back to HTTP Basic.
    OpenBmc,
}

impl Flavour {
    /// By the server's model, so that a managed server's simulated BMC matches its make.
    pub fn of_model(model: &str) -> Self {
        let m = model.to_ascii_lowercase();
        if m.contains("proliant") || m.contains("synergy") {
            Self::Hpe
        } else if m.contains("poweredge") {
            Self::Dell
        } else if m.starts_with("ucs") {
            Self::Cisco
        } else if m.starts_with("sys-") {
            Self::Supermicro
        } else if m.contains("thinksystem") {
            Self::Lenovo
        } else {
            Self::OpenBmc
        }
    }

    /// The service root's `Vendor` (Redfish 1.5+).
    pub fn vendor(self) -> Option<&'static str> {
        match self {
            Self::Hpe => Some("HPE"),
            Self::Dell => Some("Dell"),
            Self::Cisco => Some("Cisco"),
            Self::Supermicro => Some("Supermicro"),
            Self::Lenovo => Some("Lenovo"),
            Self::OpenBmc => None,
        }
    }

    /// The ComputerSystem's `Manufacturer`, as these BMCs spell it.
    pub fn manufacturer(self) -> &'static str {
        match self {
            Self::Hpe => "HPE",
            Self::Dell => "Dell Inc.",
            Self::Cisco => "Cisco Systems Inc",
            Self::Supermicro => "Supermicro",
            Self::Lenovo => "Lenovo",
            Self::OpenBmc => "WIWYNN",
        }
    }

    pub fn system_id(self, serial: &str) -> String {
        match self {
            Self::Dell => "System.Embedded.1".into(),
            Self::Cisco => serial.to_owned(),
            Self::OpenBmc => "system".into(),
            Self::Hpe | Self::Supermicro | Self::Lenovo => "1".into(),
        }
    }

    pub fn chassis_id(self) -> &'static str {
        match self {
            Self::Dell => "System.Embedded.1",
            Self::OpenBmc => "chassis",
            _ => "1",
        }
    }

    pub fn manager_id(self) -> &'static str {
        match self {
            Self::Dell => "iDRAC.Embedded.1",
            Self::Cisco => "CIMC",
            Self::OpenBmc => "bmc",
            _ => "1",
        }
    }

    pub fn mac_location(self) -> MacLocation {
        match self {
            Self::Supermicro => MacLocation::Ports,
            Self::Lenovo => MacLocation::NetworkPorts,
            _ => MacLocation::EthernetInterfaces,
        }
    }

    pub fn sessions(self) -> bool {
        self != Self::OpenBmc
    }

    /// Whether collections may be expanded in one request (`$expand=.`).
    pub fn expand(self) -> bool {
        matches!(self, Self::Hpe | Self::Dell | Self::OpenBmc)
    }

    /// iDRAC's rule: three failed logins within 60 s lock the client's address out for an
    /// hour, whatever it sends afterwards.
    pub fn locks_out(self) -> bool {
        self == Self::Dell
    }

    /// How MACs are spelled.
    pub fn mac(self, mac: &str) -> String {
        if self == Self::OpenBmc {
            mac.to_ascii_lowercase()
        } else {
            mac.to_ascii_uppercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rack_model_has_its_make() {
        assert_eq!(Flavour::of_model("ProLiant DL360 Gen10 Plus"), Flavour::Hpe);
        assert_eq!(Flavour::of_model("Synergy 480 Gen10"), Flavour::Hpe);
        assert_eq!(Flavour::of_model("PowerEdge R750"), Flavour::Dell);
        assert_eq!(Flavour::of_model("UCSC-C240-M6SX"), Flavour::Cisco);
        assert_eq!(Flavour::of_model("SYS-120U-TNR"), Flavour::Supermicro);
        assert_eq!(Flavour::of_model("ThinkSystem SR650 V2"), Flavour::Lenovo);
        assert_eq!(Flavour::of_model("Mt.Jade"), Flavour::OpenBmc);
        assert_eq!(Flavour::Cisco.system_id("WZP1"), "WZP1");
    }
}
