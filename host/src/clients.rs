//! Who may call the host: client keys from the config, kept as SHA-256 digests and
//! compared in constant time, each with the name usage and budgets count it under.

use sha2::{Digest, Sha256};

use crate::config::{Config, KeyLookup};

/// The accepted keys, kept only as SHA-256 digests, with the name usage is counted under.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    keys: Vec<([u8; 32], String)>,
}

impl ClientKeys {
    /// Accepts `keys` (key, optional name); empty means no authentication.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        ClientKeys {
            keys: keys
                .into_iter()
                .map(|(key, name)| {
                    let digest = digest(key);
                    let name = name
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("key-{}", crate::load::hex(&digest[..4])));
                    (digest, name)
                })
                .collect(),
        }
    }

    /// Whether any key is required.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The name of `presented` if it is one of the keys. Fixed-size digests are
    /// compared without early exit, leaking neither the keys nor their length.
    pub fn accepts(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (key, name) in &self.keys {
            let diff = key
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The client keys a config asks for: its own, plus those in `auth.keys_env`.
pub fn client_keys(config: &Config, env: &KeyLookup) -> ClientKeys {
    let auth = &config.auth;
    let from_env = auth
        .keys_env
        .as_ref()
        .and_then(|var| env(var))
        .unwrap_or_default();
    let keys = auth
        .keys
        .iter()
        .map(|k| (k.key(), k.name()))
        .chain(
            from_env
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| (k, None)),
        )
        .collect::<Vec<_>>();
    ClientKeys::new(keys)
}

/// The admin keys a config asks for (`auth.admin_keys`); usage under them is never
/// counted, so their default names only tell them apart in logs.
pub fn admin_keys(config: &Config) -> ClientKeys {
    ClientKeys::new(config.auth.admin_keys.iter().map(|k| (k.key(), k.name())))
}
