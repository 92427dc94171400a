//! Writes the fuzz targets' starting corpus to `fuzz/seeds/<target>/`,
//! made with the fixed keys of `medcrypt::fuzzing`.

use std::path::Path;

use sha2::{Digest, Sha256};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    // The seeds are made afresh (random nonces): the old ones go, so the
    // committed set stays the small one the generator makes.
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    for (target, bytes) in medcrypt::fuzzing::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let name = hex::encode(&Sha256::digest(&bytes)[..8]);
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
