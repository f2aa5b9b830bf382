//! Files that hold secrets (client credentials, keys): readable by their owner only, and never
//! left half-written.

use std::io::Write;
use std::path::Path;

/// Creates `path` (it must not exist) with mode 0600 and `contents`, flushed to disk.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Writes `contents` beside `path` (mode 0600) and renames it into place, so a crash never
/// leaves half a file; creates the directory if needed.
pub fn replace_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // A name of its own beside the target, so no other writer's file is touched.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tail = gatehouse_token::random_string(6).map_err(std::io::Error::other)?;
    let partial = path.with_file_name(format!(".{name}.{tail}.partial"));
    write_private_file(&partial, contents)?;
    std::fs::rename(&partial, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_the_owners_alone_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("secret.json");
        replace_private_file(&path, "one").unwrap();
        replace_private_file(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["secret.json"], "no partial file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(
            write_private_file(&path, "three").is_err(),
            "never overwrites"
        );
    }
}
