//! Rewrites the conformance vectors in `wire-spec/vectors/`.
//!
//! `cargo run --example generate_vectors` — then review the diff: a change
//! to a vector is a change to the protocol.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("wire-spec/vectors");
    std::fs::create_dir_all(&dir)?;
    for (name, contents) in medcrypt::vectors::generate() {
        let path = dir.join(name);
        std::fs::write(&path, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
