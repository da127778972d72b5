//! `limits`: request and token rates and concurrent requests, per client key, provider or
//! `provider/model`, in the same shape as `budgets`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// How long a rate window lasts: `rpm` and `tpm` count per minute.
pub const WINDOW_SECS: u64 = 60;

/// One limit: exactly one of `client`, `provider` or `target`, and at least one of
/// `rpm`, `tpm` and `concurrent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// The name of a client key (`auth.keys[].name`).
    #[serde(default)]
    pub client: Option<String>,
    /// A configured provider.
    #[serde(default)]
    pub provider: Option<String>,
    /// A `provider/model`.
    #[serde(default)]
    pub target: Option<String>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute (input plus output).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests in flight at once.
    #[serde(default)]
    pub concurrent: Option<u64>,
}

/// What a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitScope {
    /// A named client key.
    Client,
    /// Every model of a provider.
    Provider,
    /// One `provider/model`.
    Target,
}

impl LimitScope {
    /// `client`, `provider` or `target`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Client => "client",
            LimitScope::Provider => "provider",
            LimitScope::Target => "target",
        }
    }
}

impl Limit {
    /// The scope and the name it limits (`None` for an entry that names none or several,
    /// which the config check refuses).
    pub fn scope(&self) -> Option<(LimitScope, &str)> {
        match (&self.client, &self.provider, &self.target) {
            (Some(c), None, None) => Some((LimitScope::Client, c)),
            (None, Some(p), None) => Some((LimitScope::Provider, p)),
            (None, None, Some(t)) => Some((LimitScope::Target, t)),
            _ => None,
        }
    }
}

/// Checks every entry: one scope naming something configured, at least one positive
/// limit, no scope limited twice. `Err` is (JSON path, what is wrong and what to write).
pub(super) fn check(
    limits: &[Limit],
    named_clients: &HashSet<&str>,
    providers: &HashSet<&str>,
) -> Result<(), (String, String)> {
    let mut seen = HashSet::new();
    for (i, limit) in limits.iter().enumerate() {
        let location = format!("limits[{i}]");
        let Some((scope, name)) = limit.scope() else {
            return Err((
                location,
                "name exactly one of `client`, `provider` and `target`, e.g. {\"client\": \"team-a\", \"rpm\": 60}".to_owned(),
            ));
        };
        match scope {
            LimitScope::Client if !named_clients.contains(name) => {
                return Err((
                    format!("{location}.client"),
                    format!("no client key is named `{name}`: name one in auth.keys, e.g. {{\"key\": \"${{TEAM_A_KEY}}\", \"name\": \"{name}\"}}"),
                ))
            }
            LimitScope::Provider if !providers.contains(name) => {
                return Err((
                    format!("{location}.provider"),
                    format!("no provider is called `{name}`: add it to `providers` or fix the name"),
                ))
            }
            LimitScope::Target => match name.split_once('/') {
                Some((p, m)) if !m.is_empty() && providers.contains(p) => {}
                Some((p, m)) if !m.is_empty() => {
                    return Err((
                        format!("{location}.target"),
                        format!("no provider is called `{p}`: add it to `providers` or fix the target"),
                    ))
                }
                _ => {
                    return Err((
                        format!("{location}.target"),
                        format!("`{name}` is not `provider/model`, e.g. \"openai/gpt-4o-mini\""),
                    ))
                }
            },
            _ => {}
        }
        if limit.rpm.is_none() && limit.tpm.is_none() && limit.concurrent.is_none() {
            return Err((
                location,
                "limits nothing: set `rpm`, `tpm` or `concurrent` (or remove the entry)".to_owned(),
            ));
        }
        for (field, value) in [
            ("rpm", limit.rpm),
            ("tpm", limit.tpm),
            ("concurrent", limit.concurrent),
        ] {
            if value == Some(0) {
                return Err((
                    format!("{location}.{field}"),
                    "is 0, which would refuse every request: write at least 1, or leave the field out for no limit".to_owned(),
                ));
            }
        }
        if !seen.insert((scope, name)) {
            return Err((
                location,
                format!(
                    "{} `{name}` is limited by an earlier entry too: put rpm, tpm and concurrent in one entry",
                    scope.as_str()
                ),
            ));
        }
    }
    Ok(())
}
