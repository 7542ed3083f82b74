//! Files and directories only their owner can read (`0700`/`0600`): the
//! state database, stored values, copies of job logs and the local
//! transport's cache, also on a shared filesystem.

use std::fs::File;
use std::path::Path;

/// Creates `dir` and its missing parents as `0700`.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates the new file `path` (it must not exist) as `0600`.
pub fn create_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
