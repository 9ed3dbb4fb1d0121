//! inventory-gateway: server name → NIC MACs and BMC address, from HPE OneView, Cisco UCS
//! Manager and Dell OpenManage Enterprise.

pub mod config;
pub mod domain;
pub mod sim;
pub mod vendors;
