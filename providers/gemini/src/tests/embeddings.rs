//! Embeddings: `batchEmbedContents` requests and answers.

use provider_sdk::{
    serde_json::{self, json, Value},
    EmbeddingInput, EmbeddingRequest, ErrorKind, HttpResponse, Outbound, Provider, ProviderConfig,
};

use crate::Gemini;

fn gemini() -> Gemini {
    Gemini::new(ProviderConfig::default()).unwrap()
}

#[test]
fn each_input_becomes_one_embed_content_request() {
    let mut request = EmbeddingRequest::texts("gemini-embedding-001", vec!["a".into(), "b".into()]);
    request.dimensions = Some(768);
    request
        .extra
        .insert("taskType".into(), json!("RETRIEVAL_QUERY"));
    let Outbound::Http(http) = gemini().build_embedding_request(&request).unwrap() else {
        panic!("gemini goes upstream")
    };
    assert_eq!(
        http.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    let body: Value = serde_json::from_slice(&http.body).unwrap();
    let one = |text: &str| {
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]},
               "outputDimensionality": 768, "taskType": "RETRIEVAL_QUERY"})
    };
    assert_eq!(body, json!({"requests": [one("a"), one("b")]}));
}

#[test]
fn token_arrays_are_refused_and_answers_carry_no_usage() {
    let mut request = EmbeddingRequest::texts("gemini-embedding-001", vec![]);
    request.input = EmbeddingInput::Tokens(vec![vec![1, 2]]);
    let e = gemini().build_embedding_request(&request).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    let body = br#"{"embeddings": [{"values": [0.25, -0.5]}, {"values": [1]}]}"#;
    let parsed = gemini()
        .parse_embedding_response(&HttpResponse::new(200, &[], body))
        .unwrap();
    assert_eq!(parsed.embeddings, vec![vec![0.25, -0.5], vec![1.0]]);
    assert_eq!(parsed.usage, None);
}
