//! What every tetsu component shares: selectors, quantities, logging setup and shutdown signals. No
//! storage and no component logic live here.

pub mod logging;
pub mod metrics;
pub mod quantity;
pub mod selector;
pub mod shutdown;
