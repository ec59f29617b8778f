//! The secret key file in the data directory (when `SNOWBOUND_SECRET_KEY` is unset):
//! read it, or make a new one that is kept only once the database has accepted it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rand::RngCore;
use snowbound_store::{SecretBox, SecretKeyError};

pub const KEY_FILE: &str = "secret.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("the key file {path} is empty or corrupt: it must hold 32 bytes as base64 or 64 hex digits (restore it from a backup, or set SNOWBOUND_SECRET_KEY)")]
    Corrupt { path: String },
    #[error("cannot read the key file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the data directory {dir} is not writable ({source}); Snowbound keeps its key file (and a SQLite database) there. Make it writable or point SNOWBOUND_DATA_DIR elsewhere")]
    NotWritable { dir: String, source: std::io::Error },
    #[error("there is no key file {path}, and the database holds secrets sealed with another key ({detail}). Restore that key file (or set SNOWBOUND_SECRET_KEY to its key); no new key file was written. Refusing to start")]
    Missing { path: String, detail: String },
}

/// A key made on this start, written beside its final name until the database accepts
/// it; dropped without [`NewKeyFile::keep`], it is removed.
pub struct NewKeyFile {
    pending: PathBuf,
    path: PathBuf,
}

impl NewKeyFile {
    pub fn keep(self) -> Result<(), KeyFileError> {
        let result = std::fs::rename(&self.pending, &self.path);
        result.map_err(|source| not_writable(&self.path, source))
    }

    /// The database refused the new key: it was not the first start after all.
    pub fn refused(self, detail: String) -> KeyFileError {
        KeyFileError::Missing {
            path: self.path.display().to_string(),
            detail,
        }
    }
}

impl Drop for NewKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pending);
    }
}

fn not_writable(path: &Path, source: std::io::Error) -> KeyFileError {
    let dir = path.parent().unwrap_or(path);
    KeyFileError::NotWritable {
        dir: dir.display().to_string(),
        source,
    }
}

/// Refuses a data directory this process cannot create files in, before anything else
/// tries and fails with a vaguer message.
pub fn ensure_writable_dir(dir: &Path) -> Result<(), KeyFileError> {
    let probe = dir.join(".snowbound-write-probe");
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe));
    result.map_err(|source| KeyFileError::NotWritable {
        dir: dir.display().to_string(),
        source,
    })
}

/// The key of `secret.key` in `dir`, or a new key with the file that will hold it.
pub fn load_or_prepare(dir: &Path) -> Result<(SecretBox, Option<NewKeyFile>), KeyFileError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse(&text, &path)?, None)),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            ensure_writable_dir(dir)?;
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            let text = hex::encode(key);
            let secrets = parse(&text, &path)?;
            let pending = dir.join(format!("{KEY_FILE}.new"));
            let _ = std::fs::remove_file(&pending);
            write_private(&pending, &text).map_err(|source| not_writable(&path, source))?;
            Ok((secrets, Some(NewKeyFile { pending, path })))
        }
        Err(source) => Err(KeyFileError::Unreadable {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn parse(text: &str, path: &Path) -> Result<SecretBox, KeyFileError> {
    let corrupt = || KeyFileError::Corrupt {
        path: path.display().to_string(),
    };
    if text.trim().is_empty() {
        return Err(corrupt());
    }
    // The store parses keys one way for both sources; only the blame differs.
    SecretBox::from_env_or_file(Some(text.trim()), path).map_err(|e| match e {
        SecretKeyError::BadKey => corrupt(),
        SecretKeyError::KeyFile { .. } => corrupt(),
    })
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
