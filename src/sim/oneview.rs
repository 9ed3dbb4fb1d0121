//! PLACEHOLDER — being written.

use std::sync::Arc;

use super::{Routes, SimShared};

pub fn routes(_shared: Arc<SimShared>) -> Routes {
    Arc::new(|_cfg| {})
}
