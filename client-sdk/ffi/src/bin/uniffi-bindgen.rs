//! Writes the Kotlin, Swift and Python bindings of `patrolsync-ffi` from the built library:
//! `cargo run -p patrolsync-ffi --features bindgen --bin uniffi-bindgen -- generate
//! --library target/debug/libpatrolsync_ffi.so --language python --out-dir out`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
