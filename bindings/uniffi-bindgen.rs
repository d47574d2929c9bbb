//! Library-mode bindgen for the meshdrop bindings: `cargo run -p meshdrop-ffi --bin uniffi-bindgen -- generate --library <lib> --language python --out-dir <dir>`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
