//! No code. See Cargo.toml: this crate exists for the features it turns on, so that
//! every Lambda compiles the dependencies it shares with the others the same way.
