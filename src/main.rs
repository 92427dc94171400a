//! The `medcrypt` command. The protocol core is complete; the store-backed
//! commands (init, pair, encrypt, decrypt, keys) are being built on it.

fn main() {
    println!(
        "medcrypt {}: protocol core only in this build; see README.md",
        env!("CARGO_PKG_VERSION")
    );
}
