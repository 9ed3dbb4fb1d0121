//! Generic protection for calls to fragile systems: retries, circuit breaking, throttling.
//! Nothing here knows what a vendor is; callers say which errors are transient.

pub mod background;
pub mod breaker;
pub mod refusals;
pub mod retry;
pub mod throttle;

pub use background::Background;
pub use breaker::{BreakerConfig, BreakerObserver, BreakerState, CircuitBreaker};
pub use retry::{retry, RetryPolicy, Transient};
pub use throttle::{Throttle, ThrottleConfig, Throttled};
