//! inventory-gateway: server name → NIC MACs and BMC address, from HPE OneView, Cisco UCS
//! Manager and Dell OpenManage Enterprise.

pub mod bench;
pub mod config;
pub mod controller;
pub mod demo;
pub mod domain;
pub mod fleet;
pub mod http;
pub mod lookup;
pub mod metrics;
pub mod resilience;
pub mod sim;
pub mod startup;
pub mod telemetry;
pub mod vendors;
