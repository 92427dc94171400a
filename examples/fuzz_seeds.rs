//! Writes the fuzz targets' starting corpus to `fuzz/seeds/<target>/`,
//! made with the fixed keys of `medcrypt::fuzzing`.

use std::path::Path;

use sha2::{Digest, Sha256};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (target, bytes) in medcrypt::fuzzing::seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let name = hex::encode(&Sha256::digest(&bytes)[..8]);
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
