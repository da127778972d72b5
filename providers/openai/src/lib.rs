//! The OpenAI provider: chat completions for OpenAI, Azure OpenAI and the servers that
//! speak the same protocol, all of it from [`provider_kit::openai`].
//!
//! Options of a config entry (all optional; anything else is refused):
//! - `preset`: `openai` (default), `openrouter`, `groq`, `together`, `deepseek`,
//!   `mistral`, `fireworks`, `vllm`, `ollama`, `lmstudio`, `llamacpp`, `portkey`,
//!   `litellm`. A preset gives the default base URL and the server's quirks (see
//!   [`provider_kit::openai::presets`]).
//! - `referer`, `title`: OpenRouter's `HTTP-Referer` and `X-Title` headers.
//! - `provider`, `virtual_key`, `config`: Portkey's `x-portkey-provider`,
//!   `x-portkey-virtual-key` and `x-portkey-config` headers (one is required).
//! - `azure`: `{"api_version": "2024-10-21"}` switches to Azure OpenAI: the request's
//!   model is the deployment, the key goes in an `api-key` header, and the entry's
//!   `base_url` (the resource endpoint) is required.
//! - `headers`: extra headers for every request, `{"name": "value"}`.
//!
//! Embeddings (`POST {base_url}/embeddings`) are served for every preset whose server
//! has them, and Azure; the `groq` and `deepseek` presets refuse them with an error that
//! says so.

use provider_kit::openai::{presets, Compatible, OpenAiCompatible, Preset};

/// The `openai` plugin's presets: OpenAI first, then every compatible server.
pub struct OpenAiFamily;

impl Compatible for OpenAiFamily {
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PRESETS: &'static [Preset] = presets::ALL_PRESETS;
    const DESCRIPTION: Option<&'static str> = Some(
        "OpenAI chat completions; Azure OpenAI and OpenAI-compatible servers via options (preset, azure)",
    );
}

/// The provider.
pub type OpenAi = OpenAiCompatible<OpenAiFamily>;

provider_sdk::export_provider!(OpenAi);

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::{
        AuthScheme, ErrorKind, Header, HttpResponse, Outbound, Provider, ProviderConfig,
        StreamDecoder, StreamEvent,
    };
    use serde_json::{json, Value};

    fn provider(base_url: Option<&str>, options: Value) -> OpenAi {
        OpenAi::new(ProviderConfig {
            name: "openai".into(),
            base_url: base_url.map(str::to_owned),
            options,
            resolved_base_url: None,
        })
        .unwrap()
    }

    #[test]
    fn the_manifest_describes_openai_with_priced_models() {
        let m = OpenAi::manifest();
        assert_eq!(m.name, "openai");
        assert_eq!(m.version, "1.0.0");
        assert!(m.capabilities.streaming && m.capabilities.tools);
        assert!(m.capabilities.vision && m.capabilities.reasoning);
        assert_eq!(
            m.defaults.base_url.as_deref(),
            Some("https://api.openai.com/v1")
        );
        assert_eq!(m.defaults.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(m.defaults.auth, AuthScheme::Bearer);
        let ids: Vec<_> = m.models.iter().map(|m| m.id.as_str()).collect();
        for id in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "o3",
            "o4-mini",
            "o3-mini",
        ] {
            assert!(ids.contains(&id), "{id} missing");
        }
        let mini = m.models.iter().find(|m| m.id == "gpt-4o-mini").unwrap();
        assert_eq!(mini.context_window, Some(128_000));
        let price = mini.pricing.unwrap();
        assert_eq!(
            (
                price.input_per_mtok,
                price.output_per_mtok,
                price.cached_input_per_mtok
            ),
            (0.15, 0.60, Some(0.075))
        );
        for model in m
            .models
            .iter()
            .filter(|m| !m.id.starts_with("text-embedding"))
        {
            let p = model.pricing.unwrap();
            assert!(
                p.cached_input_per_mtok.unwrap() < p.input_per_mtok,
                "{}",
                model.id
            );
        }
    }

    #[test]
    fn the_key_goes_in_a_bearer_header_except_on_azure() {
        assert_eq!(provider(None, json!({})).auth(), AuthScheme::Bearer);
        assert_eq!(
            provider(None, json!({"preset": "groq"})).auth(),
            AuthScheme::Bearer
        );
        assert_eq!(
            provider(Some("https://r.openai.azure.com"), json!({"azure": {}})).auth(),
            AuthScheme::Header {
                name: "api-key".into()
            }
        );
    }

    #[test]
    fn the_conformance_material_round_trips_through_the_provider() {
        let p = provider(None, OpenAi::conformance().options);
        let c = OpenAi::conformance();
        let body = c.response.chunks.concat();
        let headers: Vec<Header<'_>> = c
            .response
            .headers
            .iter()
            .map(|(n, v)| Header::new(n, v))
            .collect();
        let answer = p
            .parse_response(&HttpResponse::new(200, &headers, &body))
            .unwrap();
        assert_eq!(
            answer.message.content.as_deref(),
            Some("Hello! How can I assist you today?")
        );

        let mut decoder = p.stream_decoder();
        let mut events = Vec::new();
        for piece in &c.stream.chunks {
            decoder.feed(piece, &mut events).unwrap();
        }
        decoder.finish(&mut events).unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: Some("chatcmpl-123".into()),
                    model: Some("gpt-4o-mini".into())
                },
                StreamEvent::TextDelta {
                    text: "Hello".into()
                },
                StreamEvent::Finish {
                    reason: provider_sdk::FinishReason::Stop
                },
                StreamEvent::Usage {
                    usage: provider_sdk::Usage {
                        prompt_tokens: 14,
                        completion_tokens: 3,
                        ..Default::default()
                    }
                },
            ]
        );

        let canned = c.error.unwrap();
        let body = canned.response.chunks.concat();
        let headers: Vec<Header<'_>> = canned
            .response
            .headers
            .iter()
            .map(|(n, v)| Header::new(n, v))
            .collect();
        let e = p.classify_error(&HttpResponse::new(canned.response.status, &headers, &body));
        assert_eq!(
            (e.kind, canned.kind),
            (ErrorKind::RateLimited, ErrorKind::RateLimited)
        );
        assert_eq!(e.retry_after_ms, Some(3000));
    }

    #[test]
    fn the_sample_requests_build_absolute_urls() {
        let p = provider(None, json!({}));
        for request in [
            provider_sdk::samples::chat_request("gpt-4o"),
            provider_sdk::samples::stream_request("gpt-4o"),
            provider_sdk::samples::tool_request("gpt-4o"),
        ] {
            let Outbound::Http(http) = p.build_request(&request).unwrap() else {
                panic!("the openai provider always goes upstream")
            };
            assert_eq!(http.url, "https://api.openai.com/v1/chat/completions");
            let body: Value = serde_json::from_slice(&http.body).unwrap();
            assert_eq!(body["model"], "gpt-4o");
        }
    }

    #[test]
    fn bad_options_fail_construction_with_a_clear_message() {
        let e = OpenAi::new(ProviderConfig {
            name: "x".into(),
            base_url: None,
            options: json!({"preset": "nope"}),
            resolved_base_url: None,
        })
        .err()
        .unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidRequest);
        assert!(
            e.message.contains("valid presets: openai, openrouter"),
            "{}",
            e.message
        );
    }
}
