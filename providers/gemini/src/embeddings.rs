//! Embeddings through `batchEmbedContents`
//! (<https://ai.google.dev/api/embeddings#method:-models.batchembedcontents>):
//! `POST {base}/models/{model}:batchEmbedContents` with one `EmbedContentRequest` per
//! input, `{"model": "models/{model}", "content": {"parts": [{"text": ...}]},
//! "outputDimensionality": N}`; the answer, `{"embeddings": [{"values": [...]}]}`, is
//! "in the same order as provided in the batch request".
//!
//! Gemini embeds text only (token arrays are refused) and reports no token usage for
//! embeddings, so the answer carries none (the host records it as unknown). Gemini's own
//! `taskType` and `title`, when the client sends them, go into every request.

use provider_sdk::{
    serde_json, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, ErrorKind, HttpRequest,
    ProviderError,
};
use serde_json::{json, Map, Value};

use crate::request::model_id;

/// Builds the `batchEmbedContents` request for `request`.
pub(crate) fn build(
    base_url: &str,
    request: &EmbeddingRequest,
) -> Result<HttpRequest, ProviderError> {
    let model = model_id(&request.model)?;
    let EmbeddingInput::Texts(texts) = &request.input else {
        return Err(ProviderError::invalid_request(
            "gemini embeds text: send `input` as strings, not token arrays",
        ));
    };
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".into(), json!(format!("models/{model}")));
            one.insert("content".into(), json!({"parts": [{"text": text}]}));
            if let Some(dimensions) = request.dimensions {
                one.insert("outputDimensionality".into(), json!(dimensions));
            }
            for field in ["taskType", "title"] {
                if let Some(value) = request.extra.get(field) {
                    one.insert(field.into(), value.clone());
                }
            }
            Value::Object(one)
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "requests": requests }))
        .map_err(|e| ProviderError::plugin_fault(format!("cannot encode the request: {e}")))?;
    Ok(HttpRequest::post_json(
        format!("{base_url}/models/{model}:batchEmbedContents"),
        body,
    ))
}

/// Parses a `BatchEmbedContentsResponse`.
pub(crate) fn parse(body: &[u8]) -> Result<EmbeddingResponse, ProviderError> {
    let malformed = |detail: String| {
        ProviderError::new(
            ErrorKind::ProviderService,
            format!("gemini sent an embeddings answer that is not valid: {detail}"),
        )
    };
    let body: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let items = body
        .get("embeddings")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("it has no `embeddings` list".into()))?;
    let embeddings = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.get("values")
                .and_then(Value::as_array)
                .and_then(|values| {
                    values
                        .iter()
                        .map(|v| v.as_f64().map(|f| f as f32))
                        .collect::<Option<Vec<f32>>>()
                })
                .ok_or_else(|| {
                    malformed(format!("embeddings[{i}].values is not a list of numbers"))
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(EmbeddingResponse {
        model: String::new(),
        embeddings,
        usage: None,
    })
}
