//! End-to-end tests of the gateway API: the real app on a real port, talking to the real
//! simulators over HTTP.

mod ambiguity;
mod errors;
mod fairness;
mod faults;
mod fleet;
mod helpers;
mod ops;
mod rate_limit;
mod redfish;
mod servers;
