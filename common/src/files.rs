//! Files only their owner may read (private keys, kubeconfigs, databases) and directories only
//! their owner may enter: created with their mode rather than chmod'ed after, whatever the
//! umask, and an existing one's mode is narrowed when it is opened or written again.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read and write.
pub const PRIVATE_FILE: u32 = 0o600;
/// Owner only.
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes `data` to `path` (replacing its contents), readable by the owner only.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PRIVATE_FILE)
        .open(path)?;
    // The mode applies only to a file this call created.
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE))?;
    file.write_all(data)
}

/// Creates `path` only if it is missing, readable by the owner only; false if it existed.
pub fn create_private(path: &Path, data: &[u8]) -> std::io::Result<bool> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(data)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            restrict(path, PRIVATE_FILE)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Creates the directory `path` (its parents as usual) so that only its owner may enter it,
/// and narrows an existing one's mode.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(PRIVATE_DIR).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {
            restrict(path, PRIVATE_DIR)
        }
        Err(e) => Err(e),
    }
}

/// Takes away the permission bits of `path` beyond `mode`, if it exists.
pub fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o777 & !mode != 0 => {
            let narrowed = meta.permissions().mode() & 0o777 & mode;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(narrowed))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_dirs_get_owner_only_modes() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("a/private");
        create_private_dir(&private).unwrap();
        assert_eq!(mode(&private), 0o700);
        let key = private.join("x.key");
        write_private(&key, b"secret").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"secret");
        // Files and directories made too open before are narrowed.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&key, b"again").unwrap();
        assert_eq!(mode(&key), 0o600);
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&private).unwrap();
        assert_eq!(mode(&private), 0o700);
        let conf = private.join("x.conf");
        assert!(create_private(&conf, b"1").unwrap());
        assert_eq!(mode(&conf), 0o600);
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!create_private(&conf, b"2").unwrap());
        assert_eq!(mode(&conf), 0o600);
        assert_eq!(std::fs::read(&conf).unwrap(), b"1");
    }
}
