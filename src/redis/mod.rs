//! Redis shell: the only user of the `redis` crate.
pub mod info;
