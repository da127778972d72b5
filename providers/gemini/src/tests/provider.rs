//! The manifest, construction and the conformance material.

use provider_sdk::{
    serde_json::{self, json},
    AuthScheme, ErrorKind, Header, HttpResponse, Provider, ProviderConfig, StreamDecoder,
    StreamEvent,
};

use crate::{conformance, Gemini, DEFAULT_BASE_URL};

#[test]
fn the_manifest_declares_gemini_its_defaults_and_priced_models() {
    let manifest = Gemini::manifest();
    assert_eq!(manifest.name, "gemini");
    assert_eq!(manifest.version, "1.0.0");
    let caps = manifest.capabilities;
    assert!(caps.streaming && caps.tools && caps.vision && caps.reasoning);
    assert!(caps.embeddings);
    assert_eq!(
        manifest.defaults.base_url.as_deref(),
        Some("https://generativelanguage.googleapis.com/v1beta")
    );
    assert_eq!(
        manifest.defaults.api_key_env.as_deref(),
        Some("GEMINI_API_KEY")
    );
    assert_eq!(
        manifest.defaults.auth,
        AuthScheme::Header {
            name: "x-goog-api-key".to_owned()
        }
    );
    let ids: Vec<&str> = manifest.models.iter().map(|m| m.id.as_str()).collect();
    for id in [
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.0-flash",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert!(ids.contains(&crate::EMBEDDING_MODEL), "{ids:?}");
    for model in manifest
        .models
        .iter()
        .filter(|m| m.id != crate::EMBEDDING_MODEL)
    {
        assert!(
            model.context_window.is_some_and(|w| w >= 1_000_000),
            "{}",
            model.id
        );
        assert!(
            model.max_output_tokens.is_some_and(|m| m >= 8_192),
            "{}",
            model.id
        );
        let pricing = model.pricing.expect("every model is priced");
        assert!(pricing.input_per_mtok > 0.0 && pricing.output_per_mtok > pricing.input_per_mtok);
        if let Some(cached) = pricing.cached_input_per_mtok {
            assert!(cached < pricing.input_per_mtok, "{}", model.id);
        }
    }
    let flash = manifest
        .models
        .iter()
        .find(|m| m.id == "gemini-2.5-flash")
        .unwrap();
    let pricing = flash.pricing.unwrap();
    assert_eq!(
        (
            pricing.input_per_mtok,
            pricing.output_per_mtok,
            pricing.cached_input_per_mtok
        ),
        (0.30, 2.50, Some(0.03))
    );
}

#[test]
fn the_provider_uses_the_key_header_of_its_manifest() {
    let provider = Gemini::new(ProviderConfig::default()).unwrap();
    assert_eq!(
        provider.auth(),
        AuthScheme::Header {
            name: "x-goog-api-key".to_owned()
        }
    );
}

#[test]
fn construction_takes_the_default_base_url_and_checks_options() {
    let provider = Gemini::new(ProviderConfig::default()).unwrap();
    assert_eq!(provider.base_url(), DEFAULT_BASE_URL);
    assert!(!provider.options().include_thoughts);

    let provider = Gemini::new(ProviderConfig {
        base_url: Some("https://proxy.example/gemini/v1beta/".to_owned()),
        options: json!({}),
        ..ProviderConfig::default()
    })
    .unwrap();
    assert_eq!(provider.base_url(), "https://proxy.example/gemini/v1beta");

    let error = Gemini::new(ProviderConfig {
        options: json!({"include_thought": true}),
        ..ProviderConfig::default()
    })
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(
        error.message.contains("include_thoughts"),
        "{}",
        error.message
    );

    let error = Gemini::new(ProviderConfig {
        base_url: Some("generativelanguage.googleapis.com".to_owned()),
        ..ProviderConfig::default()
    })
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
}

/// What `provider-host validate` checks, run on the shipped material.
#[test]
fn the_conformance_material_passes_the_host_checks() {
    let material = Gemini::conformance();
    let provider = Gemini::new(ProviderConfig {
        options: material.options.clone(),
        ..ProviderConfig::default()
    })
    .unwrap();

    let body = material.response.chunks.concat();
    assert_eq!(body, conformance::RESPONSE, "shipped unchanged");
    let answer = provider
        .parse_response(&HttpResponse::new(material.response.status, &[], &body))
        .unwrap();
    assert!(answer.message.content.is_some());

    let stream = material.stream.chunks.concat();
    assert_eq!(stream, conformance::STREAM, "shipped unchanged");
    assert_eq!(material.stream.chunks.len(), 3, "one chunk per event");
    let mut decoder = provider.stream_decoder();
    let mut events = Vec::new();
    for chunk in &material.stream.chunks {
        decoder.feed(chunk, &mut events).unwrap();
    }
    decoder.finish(&mut events).unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. })));

    let canned = material.error.expect("an error sample");
    let headers: Vec<Header<'_>> = canned
        .response
        .headers
        .iter()
        .map(|(n, v)| Header::new(n, v))
        .collect();
    let body = canned.response.chunks.concat();
    let error =
        provider.classify_error(&HttpResponse::new(canned.response.status, &headers, &body));
    assert_eq!(error.kind, canned.kind);
    assert_eq!(canned.kind, ErrorKind::RateLimited);

    // The error body is Google's `google.rpc.Status` shape.
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["error"]["status"], "RESOURCE_EXHAUSTED");
}
