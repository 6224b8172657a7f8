//! What every tetsu component shares: selectors, logging setup and shutdown signals. No
//! storage and no component logic live here.

pub mod logging;
pub mod selector;
pub mod shutdown;
