//! The Sentinel-compatible discovery port.
pub mod view;
