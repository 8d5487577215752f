//! Secrets at rest: AES-256-GCM under a 32-byte master key, with a random 96-bit nonce per
//! value and the connector and secret names as associated data (so a sealed value cannot be
//! moved to another row). Sealed layout: key-version byte, nonce, ciphertext with tag.

use crate::error::StoreError;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use base64::Engine as _;
use std::io::Write as _;
use std::path::Path;

/// The only key version so far. Bumped when key rotation is added.
pub(crate) const KEY_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The environment variable that overrides the key file.
pub const MASTER_KEY_ENV: &str = "USERSYNC_MASTER_KEY";

/// A 32-byte master key. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Parses the base64 form used by `USERSYNC_MASTER_KEY` (standard alphabet, padding
    /// optional, surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|e| StoreError::MasterKeyEnv {
                reason: format!("not valid base64: {e}"),
            })?;
        let bytes: [u8; 32] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::MasterKeyEnv {
                    reason: format!("decodes to {} bytes", decoded.len()),
                })?;
        Ok(Self(bytes))
    }

    /// Reads the key file, which must hold exactly 32 bytes.
    pub(crate) fn read_file(path: &Path) -> Result<Option<Self>, StoreError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::MasterKeyFile {
                    path: path.to_path_buf(),
                    reason: format!(
                        "cannot read it: {e} — check its owner and permissions (it should be 0600, owned by the usersync user)"
                    ),
                });
            }
        };
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::MasterKeyFile {
                path: path.to_path_buf(),
                reason: format!(
                    "holds {} bytes, expected exactly 32 — restore the original file from backup",
                    bytes.len()
                ),
            })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    "master key file is readable by other users; run `chmod 600` on it"
                );
            }
        }
        Ok(Some(Self(key)))
    }

    /// Writes a new key file with mode 0600; fails if one already exists.
    pub(crate) fn write_new_file(&self, path: &Path) -> Result<(), StoreError> {
        let err = |e: std::io::Error| StoreError::MasterKeyFile {
            path: path.to_path_buf(),
            reason: format!(
                "cannot create it: {e} — check the data directory's owner and permissions"
            ),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut file = opts.open(path).map_err(err)?;
        file.write_all(&self.0).map_err(err)?;
        file.sync_all().map_err(err)?;
        Ok(())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

fn aad(connector: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(connector.len() + name.len() + 1);
    aad.extend_from_slice(connector.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Encrypts a secret for the `(connector, name)` row.
pub(crate) fn seal(key: &MasterKey, connector: &str, name: &str, plaintext: &str) -> Vec<u8> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let nonce = Nonce::<Aes256Gcm>::from(nonce_bytes);
    let aad = aad(connector, name);
    let ct = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(KEY_VERSION);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts a sealed secret of the `(connector, name)` row.
pub(crate) fn open(
    key: &MasterKey,
    connector: &str,
    name: &str,
    sealed: &[u8],
) -> Result<String, StoreError> {
    let undecryptable = || StoreError::SecretUndecryptable {
        connector: connector.to_string(),
        name: name.to_string(),
    };
    let (&version, rest) = sealed.split_first().ok_or_else(undecryptable)?;
    if version != KEY_VERSION {
        return Err(StoreError::SecretFormat {
            connector: connector.to_string(),
            name: name.to_string(),
            version,
        });
    }
    if rest.len() < NONCE_LEN + 16 {
        return Err(undecryptable());
    }
    let (nonce_bytes, ct) = rest.split_at(NONCE_LEN);
    let nonce_bytes: [u8; NONCE_LEN] = nonce_bytes.try_into().map_err(|_| undecryptable())?;
    let nonce = Nonce::<Aes256Gcm>::from(nonce_bytes);
    let aad = aad(connector, name);
    let pt = key
        .cipher()
        .decrypt(&nonce, Payload { msg: ct, aad: &aad })
        .map_err(|_| undecryptable())?;
    String::from_utf8(pt).map_err(|_| {
        StoreError::corrupt(
            format!("secret {name:?} of connector {connector:?}"),
            "not UTF-8",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = MasterKey::generate();
        let sealed = seal(&key, "c1", "client_secret", "hunter2");
        assert_eq!(sealed[0], KEY_VERSION);
        assert_eq!(
            open(&key, "c1", "client_secret", &sealed).unwrap(),
            "hunter2"
        );
        // Moved to another row: fails.
        assert!(matches!(
            open(&key, "c2", "client_secret", &sealed),
            Err(StoreError::SecretUndecryptable { .. })
        ));
        // Two seals of the same value differ (random nonce).
        assert_ne!(sealed, seal(&key, "c1", "client_secret", "hunter2"));
    }

    #[test]
    fn base64_key_parsing() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(MasterKey::from_base64(&format!("  {b64}\n")).is_ok());
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
        let err = MasterKey::from_base64(&short).unwrap_err().to_string();
        assert!(
            err.contains("USERSYNC_MASTER_KEY is not 32 bytes of base64"),
            "{err}"
        );
        assert!(err.contains("16 bytes"), "{err}");
        assert!(MasterKey::from_base64("not base64!!").is_err());
        assert_eq!(
            format!("{:?}", MasterKey::generate()),
            "MasterKey(<redacted>)"
        );
    }
}
