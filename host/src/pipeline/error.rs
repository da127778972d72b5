//! Why a call was not answered, in one taxonomy every ingress renders in its own shape.

use provider_sdk::{ErrorKind, ProviderError};

use crate::{limits::LimitExceeded, shared_state::Unavailable, usage::BudgetSpent};

/// Why a request was not answered. `Display` is one line for the client and the log.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DispatchError {
    /// No alias and no `provider/model` matches.
    #[error(
        "unknown model `{model}`: use `provider/model` with a configured provider, or an alias"
    )]
    UnknownModel {
        /// What the client asked for.
        model: String,
    },
    /// The model string is longer than any model's name.
    #[error(
        "the model name is {length} bytes long; at most {} are accepted",
        super::MAX_MODEL_NAME_BYTES
    )]
    ModelNameTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The calling client has spent one of its budgets.
    #[error("{0}")]
    ClientBudgetSpent(BudgetSpent),
    /// The model's providers exist but none could be tried.
    #[error("no provider can serve `{model}` right now: {}", reasons.join("; "))]
    NotReady {
        /// What the client asked for.
        model: String,
        /// Each target's provider and why it was not tried.
        reasons: Vec<String>,
    },
    /// No target offers what the request needs (tools, images, streaming, reasoning).
    #[error("`{model}` cannot serve this request: {}", reasons.join("; "))]
    Unsupported {
        /// What the client asked for.
        model: String,
        /// Each target and what it lacks.
        reasons: Vec<String>,
    },
    /// Every target's provider has spent its budget.
    #[error("no provider can serve `{model}` within budget: {}", reasons.join("; "))]
    BudgetSpent {
        /// What the client asked for.
        model: String,
        /// Each target and its spent budget.
        reasons: Vec<String>,
    },
    /// Rate limits refused the call: the client's own, or those of every target.
    #[error("{0}")]
    RateLimited(LimitExceeded),
    /// Limits or budgets could not be checked: the shared state is unreachable and
    /// `shared_state.on_unavailable` is `fail_closed`.
    #[error(
        "{0}; shared_state.on_unavailable is fail_closed, so requests are refused until it is back"
    )]
    SharedStateUnavailable(Unavailable),
    /// The last target tried failed (after its retries).
    #[error("{target}: {error}")]
    Provider {
        /// The target that failed last.
        target: String,
        /// What went wrong.
        error: ProviderError,
        /// Attempts made before giving up (0 when the failure came mid-stream).
        attempts: u32,
    },
}

impl DispatchError {
    /// The error's kind, which decides the status the client sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DispatchError::UnknownModel { .. } => ErrorKind::ModelNotFound,
            DispatchError::NotReady { .. } | DispatchError::SharedStateUnavailable(_) => {
                ErrorKind::ProviderService
            }
            DispatchError::RateLimited(_) => ErrorKind::RateLimited,
            DispatchError::ClientBudgetSpent(_) | DispatchError::BudgetSpent { .. } => {
                ErrorKind::QuotaExceeded
            }
            DispatchError::Unsupported { .. } | DispatchError::ModelNameTooLong { .. } => {
                ErrorKind::InvalidRequest
            }
            DispatchError::Provider { error, .. } => error.kind,
        }
    }

    /// The HTTP status every ingress answers this error with. The body's shape is the
    /// client protocol's; the status is the host's, so usage records agree across
    /// protocols.
    pub fn http_status(&self) -> u16 {
        match self {
            DispatchError::NotReady { .. } | DispatchError::SharedStateUnavailable(_) => 503,
            DispatchError::Unsupported { .. } => 400,
            _ => match self.kind() {
                ErrorKind::InvalidRequest | ErrorKind::ContextWindowExceeded => 400,
                ErrorKind::ModelNotFound => 404,
                ErrorKind::RateLimited | ErrorKind::QuotaExceeded => 429,
                // The host's key for the upstream was refused: not the client's doing.
                ErrorKind::Authentication | ErrorKind::Connection | ErrorKind::ProviderService => {
                    502
                }
                ErrorKind::Timeout => 504,
                ErrorKind::PluginFault => 500,
            },
        }
    }
}
