//! UniFFI bindings of the meshdrop core: thin wrappers, no logic.

uniffi::setup_scaffolding!();

/// The version of the meshdrop core these bindings wrap.
#[uniffi::export]
pub fn version() -> String {
    meshdrop_core::VERSION.to_string()
}
