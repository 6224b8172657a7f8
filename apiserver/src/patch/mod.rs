//! STUB placeholder until the strategic merge patch module lands; replaced whole.
pub mod schema;
pub mod strategic;
