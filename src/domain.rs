//! Domain types. Each one is parsed once at the edge (HTTP path, query, vendor payload) and is
//! valid by construction afterwards, so nothing downstream re-checks a name or a MAC.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("server name must be 1-128 characters, got {0}")]
    NameLength(usize),
    #[error("server name may only contain A-Z a-z 0-9 . _ : - (found {0:?})")]
    NameChar(char),
    #[error("not a MAC address: {0:?}")]
    Mac(String),
    #[error("not an IP address or host name: {0:?}")]
    BmcAddress(String),
    #[error("unknown vendor {0:?} (expected hpe|hp|cisco|ucs|dell|supermicro|lenovo|other)")]
    Vendor(String),
}

/// A server name as callers and vendors use it: 1–128 characters of `[A-Za-z0-9._:-]`.
/// The charset is deliberately narrower than any vendor's so that no query language
/// (OneView filter, UCS XML, OData) ever sees a quote or a delimiter from a caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerName(String);

impl ServerName {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let len = s.chars().count();
        if len == 0 || len > Self::MAX_LEN {
            return Err(DomainError::NameLength(len));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(DomainError::NameChar(c));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Key for case-insensitive matching (the replaced operator matched names that way).
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// Case-insensitive comparison with a name as a vendor spells it.
    pub fn matches(&self, vendor_name: &str) -> bool {
        self.0.eq_ignore_ascii_case(vendor_name)
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ServerName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A 48-bit MAC address. Accepts the spellings vendors use (`AA:BB:..`, `aa-bb-..`,
/// `aabb.ccdd.eeff`, `aabbccddeeff`) and always prints lower-case colon form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let err = || DomainError::Mac(s.to_owned());
        let hex: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        let separators = s.trim().len() - hex.len();
        if hex.len() != 12 || !(separators == 0 || separators == 2 || separators == 5) {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(err)?, 16)
                .map_err(|_| err())?;
        }
        Ok(Self(out))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    pub fn from_octets(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// All-zero MACs are what vendors report for an unset/virtual slot; they never name a NIC.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddress({self})")
    }
}

impl FromStr for MacAddress {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where the BMC answers: an IP address (v4 or v6) or a DNS host name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BmcAddress {
    Ip(IpAddr),
    Host(String),
}

impl BmcAddress {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        // Vendors sometimes bracket IPv6 literals (URL style).
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        if is_host_name(s) {
            return Ok(Self::Host(s.to_ascii_lowercase()));
        }
        Err(DomainError::BmcAddress(s.to_owned()))
    }

    /// `::`/`0.0.0.0`/link-local addresses are placeholders or unreachable from a cluster;
    /// vendor parsers use this to skip them.
    pub fn is_usable(&self) -> bool {
        match self {
            Self::Ip(IpAddr::V4(v4)) => !v4.is_unspecified() && !v4.is_link_local(),
            Self::Ip(IpAddr::V6(v6)) => {
                !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
            }
            Self::Host(_) => true,
        }
    }
}

fn is_host_name(s: &str) -> bool {
    // A purely numeric dotted string that failed IP parsing is a bad IP, not a host name.
    let all_numeric = s.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit()));
    !s.is_empty()
        && s.len() <= 253
        && !all_numeric
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for BmcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Host(h) => f.write_str(h),
        }
    }
}

impl Serialize for BmcAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BmcAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Server vendor, as callers name it in `?vendor=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Hpe,
    Cisco,
    Dell,
    /// Servers only reached through their own BMC (`kind = "redfish"`) can be of any make.
    Supermicro,
    Lenovo,
    /// A Redfish BMC whose service root and `Manufacturer` name none of the above.
    Other,
}

impl Vendor {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hpe" | "hp" => Ok(Self::Hpe),
            "cisco" | "ucs" => Ok(Self::Cisco),
            "dell" => Ok(Self::Dell),
            "supermicro" => Ok(Self::Supermicro),
            "lenovo" => Ok(Self::Lenovo),
            "other" => Ok(Self::Other),
            _ => Err(DomainError::Vendor(s.to_owned())),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hpe => "hpe",
            Self::Cisco => "cisco",
            Self::Dell => "dell",
            Self::Supermicro => "supermicro",
            Self::Lenovo => "lenovo",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Vendor {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The kind of management system that owns a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    Oneview,
    Ucsm,
    /// Cisco UCS Central: many UCS Manager domains behind one login.
    #[serde(rename = "ucs-central")]
    UcsCentral,
    Ome,
    /// Cisco Intersight (SaaS or appliance), signed HTTP requests with an API key.
    Intersight,
    /// Servers reached only through their own BMCs' Redfish services (a configured set).
    Redfish,
}

impl SystemKind {
    /// The one vendor every server of this kind of system is of; `None` for a set of Redfish
    /// BMCs, whose servers each say their own make.
    pub fn vendor(&self) -> Option<Vendor> {
        match self {
            Self::Oneview => Some(Vendor::Hpe),
            Self::Ucsm | Self::UcsCentral | Self::Intersight => Some(Vendor::Cisco),
            Self::Ome => Some(Vendor::Dell),
            Self::Redfish => None,
        }
    }

    /// Whether a system of this kind may hold servers of `vendor`.
    pub fn may_hold(&self, vendor: Vendor) -> bool {
        self.vendor().is_none_or(|v| v == vendor)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Oneview => "oneview",
            Self::Ucsm => "ucsm",
            Self::UcsCentral => "ucs-central",
            Self::Ome => "ome",
            Self::Intersight => "intersight",
            Self::Redfish => "redfish",
        }
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bmc {
    /// IPv4, IPv6 (no brackets) or a host name.
    #[schema(value_type = String, example = "10.1.0.17")]
    pub address: BmcAddress,
    /// e.g. `ilo5`, `cimc`, `idrac9`; null when the vendor does not say.
    pub kind: Option<String>,
    /// The ComputerSystem of this server in its BMC's Redfish service, as the BMC itself lists
    /// it (e.g. `/redfish/v1/Systems/System.Embedded.1`; a Cisco CIMC's id is the serial
    /// number). Present when the gateway read it from the BMC: always for `kind = "redfish"`,
    /// for other systems when they are configured with `verify_bmc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "/redfish/v1/Systems/1")]
    pub redfish_system: Option<String>,
    /// Whether the BMC answered the gateway's Redfish reads for this record: absent when it was
    /// not asked (no `verify_bmc`), `false` when it could not be read (then `redfish_system`
    /// is absent and a consumer falls back to its own rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<bool>,
    /// The port the BMC's Redfish service answers on, when it is not the scheme's default
    /// (443): part of the BMC URL a consumer builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

impl Bmc {
    /// A BMC as a manager reports it, not (yet) asked itself.
    pub fn reported(address: BmcAddress, kind: Option<String>) -> Self {
        Self {
            address,
            kind,
            redfish_system: None,
            answered: None,
            port: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Nic {
    pub name: String,
    /// Lower-case, colon-separated.
    #[schema(value_type = String, example = "aa:bb:cc:00:11:22", pattern = "^([0-9a-f]{2}:){5}[0-9a-f]{2}$")]
    pub mac: MacAddress,
    pub kind: Option<String>,
    pub location: Option<String>,
}

/// What the gateway answers for one server. Fields a vendor does not provide are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServerRecord {
    /// As the vendor spells it.
    pub name: String,
    pub vendor: Vendor,
    pub system: SystemKind,
    /// The configured name of the system instance that answered (several UCSM domains may be configured).
    pub system_name: String,
    /// The vendor's own identifier: OneView profile URI, UCS DN, OME profile/device id.
    pub system_id: String,
    pub bmc: Option<Bmc>,
    pub nics: Vec<Nic>,
    /// The NIC the vendor marks as boot/first (rule per vendor in the README).
    #[schema(value_type = Option<String>, pattern = "^([0-9a-f]{2}:){5}[0-9a-f]{2}$")]
    pub boot_mac: Option<MacAddress>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub power_state: Option<String>,
    pub fetched_at: DateTime<Utc>,
    pub stale: bool,
    /// Configured systems that might also hold this name but could not be asked for this answer
    /// (error, timeout, breaker open, throttled). Empty when every relevant system answered (or
    /// is known not to hold the name). A non-empty list means the name could still turn out to
    /// be ambiguous: do not act on the answer as if it were verified. Absent from older gateways.
    #[serde(default)]
    #[schema(required = true, example = json!([]))]
    pub unverified: Vec<String>,
    /// Why `nics` is empty although the server exists, when the system could not say which
    /// NICs it has (e.g. Intersight holds no adapter inventory for a standalone rack server).
    /// Absent when the NICs are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nics_unavailable: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        for ok in ["a", "WEB-01", "rack1.node_2:eth", &"x".repeat(128)] {
            assert!(ServerName::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(ServerName::parse(""), Err(DomainError::NameLength(0)));
        assert_eq!(
            ServerName::parse(&"x".repeat(129)),
            Err(DomainError::NameLength(129))
        );
        for (bad, c) in [
            ("a'b", '\''),
            ("a\"b", '"'),
            ("a b", ' '),
            ("a<b", '<'),
            ("é", 'é'),
            ("a%b", '%'),
        ] {
            assert_eq!(ServerName::parse(bad), Err(DomainError::NameChar(c)));
        }
        assert!(ServerName::parse("Web-01").unwrap().matches("WEB-01"));
    }

    #[test]
    fn macs_normalise() {
        let want = "aa:bb:cc:0d:0e:0f";
        for s in [
            "AA:BB:CC:0D:0E:0F",
            "aa-bb-cc-0d-0e-0f",
            "aabb.cc0d.0e0f",
            "AABBCC0D0E0F",
            " aa:bb:cc:0d:0e:0f ",
        ] {
            assert_eq!(MacAddress::parse(s).unwrap().to_string(), want, "{s}");
        }
        for bad in [
            "",
            "derived",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "gg:bb:cc:dd:ee:ff",
            "aab:bcc:dde:eff",
            "a:a:b:b:c:c:d:d:e:e:f:f",
        ] {
            assert!(MacAddress::parse(bad).is_err(), "{bad}");
        }
        assert!(MacAddress::parse("00:00:00:00:00:00").unwrap().is_zero());
    }

    #[test]
    fn bmc_addresses() {
        assert_eq!(
            BmcAddress::parse("10.0.0.5").unwrap(),
            BmcAddress::Ip("10.0.0.5".parse().unwrap())
        );
        assert_eq!(
            BmcAddress::parse("[fd00::1]").unwrap(),
            BmcAddress::Ip("fd00::1".parse().unwrap())
        );
        assert_eq!(
            BmcAddress::parse("iDRAC-ABC123.lab.example").unwrap(),
            BmcAddress::Host("idrac-abc123.lab.example".into())
        );
        for bad in ["", "10.0.0.256", "a b", "-x.example", "http://x"] {
            assert!(BmcAddress::parse(bad).is_err(), "{bad}");
        }
        assert!(!BmcAddress::parse("::").unwrap().is_usable());
        assert!(!BmcAddress::parse("fe80::1").unwrap().is_usable());
        assert!(!BmcAddress::parse("169.254.1.1").unwrap().is_usable());
        assert!(BmcAddress::parse("fd00::1").unwrap().is_usable());
    }

    #[test]
    fn vendors() {
        for (s, v) in [
            ("HPE", Vendor::Hpe),
            ("hp", Vendor::Hpe),
            ("Cisco", Vendor::Cisco),
            ("UCS", Vendor::Cisco),
            ("dell", Vendor::Dell),
        ] {
            assert_eq!(Vendor::parse(s).unwrap(), v);
        }
        assert_eq!(Vendor::parse("Lenovo").unwrap(), Vendor::Lenovo);
        assert!(Vendor::parse("ibm").is_err());
    }
}
