//! Where a request can go: a `provider/model` pair. The bottom of the module graph:
//! config names targets, the registry resolves them, the pipeline tries them.

use std::fmt;

/// A `provider/model` pair a request can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Routing name of the provider.
    pub provider: String,
    /// The provider's model id.
    pub model: String,
    /// A context-window error may fall back to this target.
    pub larger_context: bool,
}

impl Target {
    /// Splits `provider/model` at the first `/` (model ids may contain more).
    pub fn parse(text: &str) -> Option<Target> {
        let (provider, model) = text.split_once('/')?;
        (!provider.is_empty() && !model.is_empty()).then(|| Target {
            provider: provider.to_owned(),
            model: model.to_owned(),
            larger_context: false,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}
