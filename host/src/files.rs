//! Reading the files a plugin is made of (its component, its manifest, its
//! migrations): only regular files, and only up to a size the caller names.
//! The runtime, the manifest parser and the schema reader all read through
//! here, so none of them depends on another for it.

use std::path::Path;

use crate::{Error, Result};

/// Reads `path` if it is a regular file of at most `max` bytes. A device
/// (`/dev/zero`) would never end and a FIFO would block, so neither is
/// opened; a file that grows while it is read is cut off past `max` and
/// refused.
pub(crate) fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    read_regular_file_and_metadata(path, max).map(|(bytes, _)| bytes)
}

/// [`read_regular_file`], with the file's metadata as read before its
/// bytes (a write after that point changes the file's identity, which the
/// compile cache relies on).
pub(crate) fn read_regular_file_and_metadata(
    path: &Path,
    max: u64,
) -> Result<(Vec<u8>, std::fs::Metadata)> {
    use std::io::Read;
    let refuse = |kind: std::io::ErrorKind, why: String| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(kind, why),
    };
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(refuse(
            std::io::ErrorKind::InvalidInput,
            "not a regular file".into(),
        ));
    }
    if meta.len() > max {
        return Err(refuse(
            std::io::ErrorKind::FileTooLarge,
            format!("{} bytes, over the limit of {max}", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(path)
        .map_err(io)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(refuse(
            std::io::ErrorKind::FileTooLarge,
            format!("over the limit of {max} bytes"),
        ));
    }
    Ok((bytes, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_files_over_the_limit_are_refused() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        match read_regular_file(dir.path(), 10) {
            Err(e @ Error::Io { .. }) => {
                anyhow::ensure!(e.to_string().contains("not a regular file"), "{e}")
            }
            other => anyhow::bail!("expected Io, got {other:?}"),
        }
        let file = dir.path().join("f");
        std::fs::write(&file, b"0123456789")?;
        anyhow::ensure!(read_regular_file(&file, 10)? == b"0123456789");
        match read_regular_file(&file, 9) {
            Err(e @ Error::Io { .. }) => anyhow::ensure!(e.to_string().contains("limit"), "{e}"),
            other => anyhow::bail!("expected Io, got {other:?}"),
        }
        Ok(())
    }
}
