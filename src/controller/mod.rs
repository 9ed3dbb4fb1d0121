//! The BareMetalHostGenerator controller (issue 5), built bottom-up:
//! - [`crd`]: the custom resource types, compatible with the replaced kopf operator;
//! - [`render`]: pure functions from a generator + a gateway `ServerRecord` to the objects to apply;
//! - [`gateway_client`]: the only way the controller learns server facts: `GET /servers/{name}`.
//!
//! - [`admission`]: the race-free buffering limit (pure, no Kubernetes calls).
//!
//! The reconcile loop and the Kubernetes-facing wiring come next.

pub mod admission;
pub mod adoption;
pub mod context;
pub mod crd;
pub mod gateway_client;
pub mod leader;
pub mod legacy;
pub mod metrics;
pub mod migrate_check;
pub mod objects;
pub mod reconcile;
pub mod render;
pub mod run;
pub mod server;
pub mod watchers;
pub mod writes;
