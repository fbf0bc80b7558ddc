//! The pure core. See ARCHITECTURE.md.
pub mod types;
