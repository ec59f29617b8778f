//! Integration passwords at rest: ChaCha20-Poly1305 under a 32-byte instance key.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};

/// Version prefix, so the scheme can change without guessing what a stored value is.
const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("SNOWBOUND_SECRET_KEY must be 32 bytes as base64 or 64 hex digits")]
    BadKey,
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
}

/// Encrypts and decrypts secrets. Cloning shares nothing mutable.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// A key for tests and throwaway demos.
    pub fn random() -> Self {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        SecretBox {
            cipher: ChaCha20Poly1305::new(&key),
        }
    }

    /// `SNOWBOUND_SECRET_KEY` (base64 or hex) wins; else `secret.key` in the data dir,
    /// created with mode 0600 on first start.
    pub fn from_env_or_file(
        env_key: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, SecretKeyError> {
        if let Some(text) = env_key.filter(|k| !k.trim().is_empty()) {
            return parse_key(text.trim()).map(|k| Self::from_key(&k));
        }
        let path = data_dir.join("secret.key");
        let io_err = |source| SecretKeyError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_key(text.trim()).map(|k| Self::from_key(&k)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io_err)?;
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                write_private(&path, &B64.encode(key)).map_err(io_err)?;
                Ok(SecretBox {
                    cipher: ChaCha20Poly1305::new(&key),
                })
            }
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn seal(&self, secret: &SecretString) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, secret.expose_secret().as_bytes())
            .expect("ChaCha20Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<SecretString, String> {
        let data = sealed.strip_prefix(PREFIX).ok_or("unknown secret format")?;
        let bytes = B64.decode(data).map_err(|_| "secret is not base64")?;
        if bytes.len() < NONCE_LEN {
            return Err("secret is truncated".into());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                "secret does not open with this key (was SNOWBOUND_SECRET_KEY changed?)"
            })?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| "secret is not UTF-8".into())
    }
}

fn parse_key(text: &str) -> Result<[u8; 32], SecretKeyError> {
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| SecretKeyError::BadKey)?
    } else {
        B64.decode(text).map_err(|_| SecretKeyError::BadKey)?
    };
    bytes.try_into().map_err(|_| SecretKeyError::BadKey)
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
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let a = SecretBox::random();
        let sealed = a.seal(&SecretString::from("hunter2"));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(a.open(&sealed).unwrap().expose_secret(), "hunter2");
        assert!(SecretBox::random().open(&sealed).is_err());
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_nothing_else() {
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key(&B64.encode([7u8; 32])).is_ok());
        assert!(parse_key("short").is_err());
        assert!(parse_key(&B64.encode([7u8; 16])).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::from_env_or_file(None, dir.path()).unwrap();
        let sealed = first.seal(&SecretString::from("pw"));
        let again = SecretBox::from_env_or_file(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose_secret(), "pw");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secret.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
