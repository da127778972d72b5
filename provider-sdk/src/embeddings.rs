//! Canonical embedding types (SDK 1.2).
//!
//! The host turns a client's embeddings request (OpenAI's `POST /v1/embeddings`) into an
//! [`EmbeddingRequest`]; a provider that serves embeddings translates it in
//! [`crate::Provider::build_embedding_request`] and reads its upstream's answer back
//! into an [`EmbeddingResponse`] in [`crate::Provider::parse_embedding_response`].
//! Vectors are always plain `f32`s here: how the client wants them encoded (a JSON
//! list, or base64) is the host's business, not the provider's.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What to embed, one vector per item. The host always hands a provider a list: a
/// client's single string arrives as a list of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// Texts.
    Texts(Vec<String>),
    /// Token arrays, in the model's own tokenizer's ids.
    Tokens(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// How many vectors the request asks for.
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Texts(texts) => texts.len(),
            EmbeddingInput::Tokens(tokens) => tokens.len(),
        }
    }

    /// Whether there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An embeddings request, as the host hands it to a provider.
///
/// `model` is the provider's own model id (the `provider/` routing prefix is gone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The provider's model id.
    pub model: String,
    /// What to embed, in order; the answer has one vector per item, in the same order.
    pub input: EmbeddingInput,
    /// The length of each vector, for models that can shorten theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user identifier forwarded to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other request field the client sent, for providers that understand it.
    #[serde(default, flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingRequest {
    /// A request for `model` embedding `texts`, nothing else set.
    pub fn texts(model: impl Into<String>, texts: Vec<String>) -> Self {
        EmbeddingRequest {
            model: model.into(),
            input: EmbeddingInput::Texts(texts),
            dimensions: None,
            user: None,
            extra: Map::new(),
        }
    }
}

/// A provider's answer: one vector per input item, in the input's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// The model that answered, as the upstream names it (may be empty).
    #[serde(default)]
    pub model: String,
    /// The vectors, `embeddings[i]` for input item `i`.
    pub embeddings: Vec<Vec<f32>>,
    /// Tokens, when the upstream reported them (never estimated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<EmbeddingUsage>,
}

/// What an embeddings request cost in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
}

impl From<EmbeddingUsage> for crate::Usage {
    fn from(usage: EmbeddingUsage) -> Self {
        crate::Usage {
            prompt_tokens: usage.prompt_tokens,
            ..crate::Usage::default()
        }
    }
}

/// The status, headers and body of an upstream's embeddings answer, carried to a
/// plugin over the JSON extension channel (see [`crate::abi::extension`]).
#[doc(hidden)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_texts_or_token_arrays_and_unknown_fields_are_kept() {
        let request: EmbeddingRequest = serde_json::from_value(json!({
            "model": "m", "input": ["a", "b"], "dimensions": 8, "task": "query"
        }))
        .unwrap();
        assert_eq!(
            request.input,
            EmbeddingInput::Texts(vec!["a".into(), "b".into()])
        );
        assert_eq!(request.dimensions, Some(8));
        assert_eq!(request.extra["task"], "query");
        let tokens: EmbeddingRequest =
            serde_json::from_value(json!({"model": "m", "input": [[1, 2], [3]]})).unwrap();
        assert_eq!(
            tokens.input,
            EmbeddingInput::Tokens(vec![vec![1, 2], vec![3]])
        );
        assert_eq!(tokens.input.len(), 2);
    }
}
