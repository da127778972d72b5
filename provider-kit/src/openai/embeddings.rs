//! Embeddings (`POST {base_url}/embeddings`; Azure:
//! `{endpoint}/openai/deployments/{deployment}/embeddings?api-version=...`), for the
//! presets whose server has the endpoint.
//!
//! Upstreams are asked for floats (no `encoding_format`, whose default is `float`);
//! answers are read in either encoding, because a passed-through client's body may
//! have asked for base64.

use base64::Engine as _;
use provider_sdk::{
    EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, ErrorKind, HttpRequest,
    HttpResponse, NativeRequest, ProviderError,
};
use serde_json::{json, Map, Value};

use super::{preset::Settings, request::encode_component};

/// Whether the entry's server has an OpenAI-style embeddings endpoint. From each
/// server's API reference: OpenAI, Azure OpenAI, OpenRouter (`/api/v1/embeddings`),
/// Together, Mistral, Fireworks, and the local servers (vLLM, Ollama, LM Studio and
/// llama.cpp's `llama-server` serve `/v1/embeddings`). Groq and DeepSeek have none.
pub fn available(settings: &Settings) -> bool {
    settings.azure.is_some() || settings.preset.capabilities.embeddings
}

/// The embeddings URL for `model` (Azure: the deployment).
pub fn url(settings: &Settings, model: &str) -> String {
    match &settings.azure {
        // learn.microsoft.com/azure/ai-services/openai/reference#embeddings: POST
        // {endpoint}/openai/deployments/{deployment-id}/embeddings?api-version=...
        Some(azure) => format!(
            "{}/openai/deployments/{}/embeddings?api-version={}",
            settings.base_url,
            encode_component(model),
            encode_component(&azure.api_version)
        ),
        None => format!("{}/embeddings", settings.base_url),
    }
}

/// Why this entry cannot embed.
fn unavailable(settings: &Settings) -> ProviderError {
    ProviderError::invalid_request(format!(
        "the `{}` preset's server has no embeddings endpoint: route embeddings to another provider",
        settings.preset.name
    ))
}

/// Builds the upstream request for `request`.
pub fn build(
    settings: &Settings,
    request: &EmbeddingRequest,
) -> Result<HttpRequest, ProviderError> {
    if !available(settings) {
        return Err(unavailable(settings));
    }
    if request.model.trim().is_empty() {
        return Err(ProviderError::invalid_request("the request names no model"));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let input = match &request.input {
        EmbeddingInput::Texts(texts) => json!(texts),
        EmbeddingInput::Tokens(tokens) => json!(tokens),
    };
    body.insert("input".into(), input);
    if let Some(dimensions) = request.dimensions {
        body.insert(settings.quirks.dimensions_field.into(), json!(dimensions));
    }
    if let Some(user) = request.user.as_ref().filter(|_| settings.quirks.send_user) {
        body.insert("user".into(), json!(user));
    }
    for (name, value) in &request.extra {
        body.entry(name.clone()).or_insert_with(|| value.clone());
    }
    let body = serde_json::to_vec(&body)
        .map_err(|e| ProviderError::plugin_fault(format!("cannot encode the request: {e}")))?;
    let mut http = HttpRequest::post_json(url(settings, &request.model), body);
    for (name, value) in &settings.headers {
        http = http.header(name.clone(), value.clone());
    }
    Ok(http)
}

/// How an embeddings body from an OpenAI client goes upstream unchanged.
pub fn native(settings: &Settings, model: &str) -> NativeRequest {
    let mut native = NativeRequest::post_json(url(settings, model));
    for (name, value) in &settings.headers {
        native = native.header(name.clone(), value.clone());
    }
    native
}

fn malformed(detail: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorKind::ProviderService,
        format!("the upstream sent an embeddings answer that is not valid: {detail}"),
    )
}

/// Parses a successful embeddings answer: vectors in `index` order, floats or base64.
pub fn parse(response: &HttpResponse<'_>) -> Result<EmbeddingResponse, ProviderError> {
    let body: Value = serde_json::from_slice(response.body).map_err(malformed)?;
    if body.get("error").is_some_and(|e| !e.is_null()) && body.get("data").is_none() {
        // Some servers answer 200 with an error body.
        return Err(super::error::from_event(&body));
    }
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("it has no `data` list"))?;
    let mut indexed = Vec::with_capacity(data.len());
    for (position, item) in data.iter().enumerate() {
        let index = item
            .get("index")
            .and_then(Value::as_u64)
            .map(|i| i as usize)
            .unwrap_or(position);
        let vector = match item.get("embedding") {
            Some(Value::Array(numbers)) => numbers
                .iter()
                .map(|n| n.as_f64().map(|f| f as f32))
                .collect::<Option<Vec<f32>>>()
                .ok_or_else(|| malformed(format!("data[{position}].embedding has a non-number")))?,
            Some(Value::String(encoded)) => decode_base64(encoded).ok_or_else(|| {
                malformed(format!("data[{position}].embedding is not base64 of f32s"))
            })?,
            _ => return Err(malformed(format!("data[{position}] has no embedding"))),
        };
        indexed.push((index, vector));
    }
    indexed.sort_by_key(|(index, _)| *index);
    let usage = body
        .pointer("/usage/prompt_tokens")
        .and_then(Value::as_u64)
        .map(|prompt_tokens| EmbeddingUsage { prompt_tokens });
    Ok(EmbeddingResponse {
        model: super::response::non_empty(body.get("model")).unwrap_or_default(),
        embeddings: indexed.into_iter().map(|(_, v)| v).collect(),
        usage,
    })
}

/// Little-endian `f32`s from base64, as OpenAI encodes them.
fn decode_base64(encoded: &str) -> Option<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::ProviderConfig;

    fn settings(base_url: Option<&str>, options: Value) -> Settings {
        Settings::from_config(
            super::super::presets::ALL_PRESETS,
            &ProviderConfig {
                name: "e".into(),
                base_url: base_url.map(str::to_owned),
                options,
                resolved_base_url: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_request_goes_to_the_presets_embeddings_url_without_an_encoding() {
        let mut request = EmbeddingRequest::texts("text-embedding-3-small", vec!["hi".into()]);
        request.dimensions = Some(256);
        let http = build(&settings(None, json!({})), &request).unwrap();
        assert_eq!(http.url, "https://api.openai.com/v1/embeddings");
        let body: Value = serde_json::from_slice(&http.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "text-embedding-3-small", "input": ["hi"], "dimensions": 256})
        );
        let azure = settings(Some("https://r.openai.azure.com"), json!({"azure": {}}));
        assert_eq!(
            build(&azure, &request).unwrap().url,
            "https://r.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
        );
        let mistral = build(&settings(None, json!({"preset": "mistral"})), &request).unwrap();
        let body: Value = serde_json::from_slice(&mistral.body).unwrap();
        assert_eq!(body["output_dimension"], 256);
        assert!(body.get("dimensions").is_none());
    }

    #[test]
    fn presets_without_embeddings_refuse_clearly() {
        let request = EmbeddingRequest::texts("m", vec!["hi".into()]);
        for preset in ["groq", "deepseek"] {
            let e = build(&settings(None, json!({"preset": preset})), &request).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidRequest);
            assert!(
                e.message.contains("no embeddings endpoint"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn answers_are_read_in_index_order_as_floats_or_base64() {
        let body = json!({"object": "list", "model": "m", "usage": {"prompt_tokens": 3, "total_tokens": 3},
        "data": [
            {"object": "embedding", "index": 1, "embedding": "AACAPwAAAMA="},
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}
        ]});
        let bytes = serde_json::to_vec(&body).unwrap();
        let parsed = parse(&HttpResponse::new(200, &[], &bytes)).unwrap();
        assert_eq!(parsed.embeddings, vec![vec![0.5, -0.25], vec![1.0, -2.0]]);
        assert_eq!(parsed.usage, Some(EmbeddingUsage { prompt_tokens: 3 }));
        assert_eq!(parsed.model, "m");
    }
}
