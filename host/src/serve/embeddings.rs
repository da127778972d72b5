//! `POST /v1/embeddings`: OpenAI's embeddings API over the pipeline.
//!
//! The request is checked here, field by field, so a client gets a 400 naming the field
//! (OpenAI's `param`) rather than whatever an upstream would make of it. Vectors come
//! back as the client asked: a JSON list of floats, or (`"encoding_format": "base64"`,
//! what the official SDKs send by default) the base64 of their little-endian `f32`
//! bytes. The host does that conversion; upstreams are asked for floats.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::{Extension, State},
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine as _;
use provider_sdk::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse, ErrorKind, Protocol};
use serde::Serialize;
use serde_json::Value;

use super::{annotate, auth::ClientName, error::ApiError, relay, RequestId};
use crate::{
    pipeline::{EmbeddingCall, NativeBody},
    Host,
};

/// The most inputs one request may carry (OpenAI's documented limit).
pub const MAX_INPUTS: usize = 2048;

/// How the client wants its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// A JSON list of numbers per vector (OpenAI's default).
    Float,
    /// The base64 of the vector's little-endian `f32` bytes.
    Base64,
}

/// Answers an embeddings request. The pipeline counts it.
pub async fn embeddings(
    State(host): State<Arc<Host>>,
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let caller = super::ingress::caller(client, id, &headers);
    let read = match super::body::read(&host, body).await {
        Err(error) => Err(ApiError::from_body(&error)),
        Ok(bytes) => parse(&bytes).map(|parsed| (parsed, bytes)),
    };
    let ((request, encoding), bytes) = match read {
        Ok(read) => read,
        Err(error) => {
            let status = error.status.as_u16();
            host.refused(caller, false, status, ErrorKind::InvalidRequest);
            return error.into_response();
        }
    };
    let call = EmbeddingCall {
        request,
        caller,
        native: Some(NativeBody {
            protocol: Protocol::OpenAiEmbeddings,
            body: bytes,
            headers: Vec::new(),
            lost: Vec::new(),
        }),
    };
    match host.embed(call).await {
        Ok(done) => {
            if let Some(body) = done.native {
                return relay::whole(body, &done.route);
            }
            let model = done.target.to_string();
            let mut response = Json(render(&model, &done.response, encoding)).into_response();
            annotate(&mut response, &done.route);
            response
        }
        Err(error) => {
            super::with_limit_headers(ApiError::from_dispatch(&error).into_response(), &error)
        }
    }
}

/// Reads and checks an embeddings body: the canonical request, and how to encode the
/// answer.
pub fn parse(bytes: &[u8]) -> Result<(EmbeddingRequest, Encoding), ApiError> {
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object with `model` and `input`",
        ));
    };
    let model = match fields.remove("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model,
        Some(Value::String(_)) | None => {
            return Err(ApiError::bad_param(
                "model",
                "`model` is missing or empty: name a `provider/model` or an alias",
            ))
        }
        Some(other) => {
            return Err(ApiError::bad_param(
                "model",
                format!("`model` must be a string, not {}", kind(&other)),
            ))
        }
    };
    let input = input(fields.remove("input"))?;
    let dimensions = match fields.remove("dimensions") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(n @ 1..) => Some(u32::try_from(n).map_err(|_| {
                ApiError::bad_param("dimensions", format!("`dimensions` {n} is too large"))
            })?),
            _ => {
                return Err(ApiError::bad_param(
                    "dimensions",
                    format!("`dimensions` must be a positive integer, not {value}"),
                ))
            }
        },
    };
    let encoding = match fields.remove("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(s)) if s == "float" => Encoding::Float,
        Some(Value::String(s)) if s == "base64" => Encoding::Base64,
        Some(other) => {
            return Err(ApiError::bad_param(
                "encoding_format",
                format!("`encoding_format` must be \"float\" or \"base64\", not {other}"),
            ))
        }
    };
    let user = match fields.remove("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(user)) => Some(user),
        Some(other) => {
            return Err(ApiError::bad_param(
                "user",
                format!("`user` must be a string, not {}", kind(&other)),
            ))
        }
    };
    let request = EmbeddingRequest {
        model,
        input,
        dimensions,
        user,
        extra: fields,
    };
    Ok((request, encoding))
}

/// `input`: a string, a list of strings, a token array or a list of token arrays;
/// always a list for the provider.
fn input(value: Option<Value>) -> Result<EmbeddingInput, ApiError> {
    let bad = |message: String| ApiError::bad_param("input", message);
    let items = match value {
        None | Some(Value::Null) => {
            return Err(bad(
                "`input` is missing: send a string, a list of strings or token arrays".into(),
            ))
        }
        Some(Value::String(text)) => vec![Value::String(text)],
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(bad(format!(
                "`input` must be a string, a list of strings or token arrays, not {}",
                kind(&other)
            )))
        }
    };
    if items.is_empty() {
        return Err(bad("`input` is empty: send at least one item".into()));
    }
    // A flat list of integers is one token array.
    if items.iter().all(Value::is_number) {
        return Ok(EmbeddingInput::Tokens(vec![tokens(&items, "input")?]));
    }
    if items.len() > MAX_INPUTS {
        return Err(bad(format!(
            "`input` has {} items; at most {MAX_INPUTS} are allowed in one request",
            items.len()
        )));
    }
    match &items[0] {
        Value::String(_) => {
            let mut texts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(text) if text.is_empty() => {
                        return Err(bad(format!("`input[{i}]` is an empty string")))
                    }
                    Value::String(text) => texts.push(text),
                    other => {
                        return Err(bad(format!(
                            "`input[{i}]` is {}, but `input[0]` is a string: send all strings or all token arrays",
                            kind(&other)
                        )))
                    }
                }
            }
            Ok(EmbeddingInput::Texts(texts))
        }
        Value::Array(_) => {
            let mut arrays = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Array(ids) => arrays.push(tokens(ids, &format!("input[{i}]"))?),
                    other => {
                        return Err(bad(format!(
                            "`input[{i}]` is {}, but `input[0]` is a token array: send all strings or all token arrays",
                            kind(other)
                        )))
                    }
                }
            }
            Ok(EmbeddingInput::Tokens(arrays))
        }
        other => Err(bad(format!(
            "`input[0]` is {}: send strings or token arrays (lists of integers)",
            kind(other)
        ))),
    }
}

/// A token array: non-empty, integers from 0 to 2^32 - 1.
fn tokens(ids: &[Value], at: &str) -> Result<Vec<u32>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::bad_param(
            "input",
            format!("`{at}` is an empty token array"),
        ));
    }
    ids.iter()
        .enumerate()
        .map(|(j, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "input",
                        format!("`{at}[{j}]` is {id}, not a token id (an integer from 0)"),
                    )
                })
        })
        .collect()
}

/// What a JSON value is, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// OpenAI's embeddings list.
#[derive(Debug, Serialize)]
pub struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject<'a>>,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageObject>,
}

#[derive(Debug, Serialize)]
struct EmbeddingObject<'a> {
    object: &'static str,
    index: usize,
    embedding: Vector<'a>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Vector<'a> {
    Float(&'a [f32]),
    Base64(String),
}

/// Present when the upstream reported usage (never invented).
#[derive(Debug, Serialize)]
struct UsageObject {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// The answer in OpenAI's shape, vectors encoded as the client asked.
pub fn render<'a>(
    model: &'a str,
    response: &'a EmbeddingResponse,
    encoding: Encoding,
) -> EmbeddingList<'a> {
    EmbeddingList {
        object: "list",
        data: response
            .embeddings
            .iter()
            .enumerate()
            .map(|(index, vector)| EmbeddingObject {
                object: "embedding",
                index,
                embedding: match encoding {
                    Encoding::Float => Vector::Float(vector),
                    Encoding::Base64 => Vector::Base64(base64_f32(vector)),
                },
            })
            .collect(),
        model,
        usage: response.usage.map(|u| UsageObject {
            prompt_tokens: u.prompt_tokens,
            total_tokens: u.prompt_tokens,
        }),
    }
}

/// The base64 of `vector`'s little-endian `f32` bytes.
pub fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> Result<(EmbeddingRequest, Encoding), ApiError> {
        parse(&serde_json::to_vec(&body).unwrap())
    }

    fn refused(body: Value) -> (Option<&'static str>, String) {
        let error = parsed(body).unwrap_err();
        assert_eq!(error.status.as_u16(), 400);
        (error.param, error.message)
    }

    #[test]
    fn every_input_shape_becomes_a_list() {
        let (r, e) = parsed(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(r.input, EmbeddingInput::Texts(vec!["hi".into()]));
        assert_eq!(e, Encoding::Float);
        let (r, _) = parsed(json!({"model": "m", "input": ["a", "b"]})).unwrap();
        assert_eq!(r.input.len(), 2);
        let (r, _) = parsed(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert_eq!(r.input, EmbeddingInput::Tokens(vec![vec![1, 2, 3]]));
        let (r, e) = parsed(
            json!({"model": "m", "input": [[1], [2, 3]], "encoding_format": "base64", "dimensions": 4, "user": "u", "x": 1}),
        )
        .unwrap();
        assert_eq!(r.input, EmbeddingInput::Tokens(vec![vec![1], vec![2, 3]]));
        assert_eq!(
            (e, r.dimensions, r.user.as_deref()),
            (Encoding::Base64, Some(4), Some("u"))
        );
        assert_eq!(r.extra["x"], 1);
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        for (body, param, says) in [
            (json!({"input": "x"}), "model", "`model` is missing"),
            (json!({"model": "m"}), "input", "`input` is missing"),
            (
                json!({"model": "m", "input": []}),
                "input",
                "`input` is empty",
            ),
            (
                json!({"model": "m", "input": ""}),
                "input",
                "`input[0]` is an empty string",
            ),
            (
                json!({"model": "m", "input": ["a", 1]}),
                "input",
                "`input[1]` is a number",
            ),
            (
                json!({"model": "m", "input": [[1], []]}),
                "input",
                "`input[1]` is an empty token array",
            ),
            (
                json!({"model": "m", "input": [1, -2]}),
                "input",
                "`input[1]` is -2",
            ),
            (
                json!({"model": "m", "input": {"a": 1}}),
                "input",
                "not an object",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": 0}),
                "dimensions",
                "positive integer",
            ),
            (
                json!({"model": "m", "input": "x", "dimensions": 1.5}),
                "dimensions",
                "positive integer",
            ),
            (
                json!({"model": "m", "input": "x", "encoding_format": "int8"}),
                "encoding_format",
                "\"float\" or \"base64\"",
            ),
        ] {
            let (got, message) = refused(body.clone());
            assert_eq!(got, Some(param), "{body}: {message}");
            assert!(message.contains(says), "{body}: {message}");
        }
        let many = vec!["x"; MAX_INPUTS + 1];
        let (param, message) = refused(json!({"model": "m", "input": many}));
        assert_eq!(param, Some("input"));
        assert!(message.contains("at most 2048"), "{message}");
    }

    #[test]
    fn base64_is_the_little_endian_f32_bytes() {
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }
}
