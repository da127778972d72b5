//! Presets: the OpenAI-compatible servers this plugin knows, their default base URLs
//! and their quirks, plus the Azure OpenAI mode. Everything here comes from the entry's
//! `options` and is settled once, in [`Settings::from_config`].
//!
//! Each quirk says what it is based on. Where a server's documentation is silent the
//! choice is the one that cannot break a request (an ignored field rather than a
//! rejected one), and the comment says so.

use provider_sdk::{ProviderConfig, ProviderError};
use serde::Deserialize;
use serde_json::Value;

/// OpenAI's own API, the manifest's default base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The latest GA version of Azure OpenAI's dated data-plane inference API.
///
/// Source: the "API specs" table of learn.microsoft.com/azure/ai-services/openai/reference
/// ("Data plane - inference | latest GA release 2024-10-21").
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// An OpenAI-compatible server family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// api.openai.com.
    OpenAi,
    /// OpenRouter.
    OpenRouter,
    /// GroqCloud.
    Groq,
    /// Together AI.
    Together,
    /// DeepSeek.
    DeepSeek,
    /// Mistral La Plateforme.
    Mistral,
    /// Fireworks AI.
    Fireworks,
    /// A vLLM server.
    Vllm,
    /// Ollama's `/v1` endpoints.
    Ollama,
    /// LM Studio's local server.
    LmStudio,
    /// llama.cpp's `llama-server`.
    LlamaCpp,
}

/// Which output-token limit field the server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLimit {
    /// `max_completion_tokens` (the request's `max_tokens` is renamed).
    MaxCompletionTokens,
    /// `max_tokens` (the request's `max_completion_tokens` is renamed).
    MaxTokens,
    /// Whichever field(s) the client sent, unchanged.
    AsSent,
}

/// How `reasoning_effort` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffortField {
    /// `"reasoning_effort": "high"`.
    ReasoningEffort,
    /// OpenRouter's normalised `"reasoning": {"effort": "high"}`.
    OpenRouterReasoning,
}

/// What differs between servers that all claim to speak chat completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Send `stream_options: {"include_usage": true}` on streamed requests.
    pub stream_usage: bool,
    /// The output-token limit field.
    pub token_limit: TokenLimit,
    /// The name of the sampling-seed field (`seed`, or Mistral's `random_seed`).
    pub seed_field: &'static str,
    /// Send the request's `user`.
    pub send_user: bool,
    /// Keep messages' participant `name`.
    pub message_names: bool,
    /// Keep the `developer` role; otherwise it is sent as `system`.
    pub developer_role: bool,
    /// Send earlier assistant turns' `reasoning_content` back.
    pub reasoning_history: bool,
    /// Send earlier assistant turns' `reasoning_details` blocks back.
    pub reasoning_details_history: bool,
    /// How `reasoning_effort` is sent.
    pub effort: EffortField,
}

/// OpenAI's own API, as the API reference documents it.
const OPENAI: Quirks = Quirks {
    // API reference, Create chat completion: `stream_options.include_usage`.
    stream_usage: true,
    // API reference: `max_tokens` is "deprecated in favor of max_completion_tokens, and
    // is not compatible with o-series models".
    token_limit: TokenLimit::MaxCompletionTokens,
    seed_field: "seed",
    send_user: true,
    message_names: true,
    developer_role: true,
    reasoning_history: false,
    reasoning_details_history: false,
    effort: EffortField::ReasoningEffort,
};

/// The conservative baseline for other servers: only fields every OpenAI-compatible
/// server knows. `developer` becomes `system` (a role every chat template has) and
/// `max_tokens` is used (accepted by every server; `max_completion_tokens` is newer).
const COMPATIBLE: Quirks = Quirks {
    stream_usage: false,
    token_limit: TokenLimit::MaxTokens,
    seed_field: "seed",
    send_user: true,
    message_names: true,
    developer_role: false,
    reasoning_history: false,
    reasoning_details_history: false,
    effort: EffortField::ReasoningEffort,
};

impl Preset {
    /// Every preset, in the order error messages list them.
    pub const ALL: [Preset; 11] = [
        Preset::OpenAi,
        Preset::OpenRouter,
        Preset::Groq,
        Preset::Together,
        Preset::DeepSeek,
        Preset::Mistral,
        Preset::Fireworks,
        Preset::Vllm,
        Preset::Ollama,
        Preset::LmStudio,
        Preset::LlamaCpp,
    ];

    /// The name used in `options.preset`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::OpenAi => "openai",
            Preset::OpenRouter => "openrouter",
            Preset::Groq => "groq",
            Preset::Together => "together",
            Preset::DeepSeek => "deepseek",
            Preset::Mistral => "mistral",
            Preset::Fireworks => "fireworks",
            Preset::Vllm => "vllm",
            Preset::Ollama => "ollama",
            Preset::LmStudio => "lmstudio",
            Preset::LlamaCpp => "llamacpp",
        }
    }

    /// The preset called `name`.
    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The base URL used when the entry sets none (each one from the server's docs).
    pub fn default_base_url(self) -> &'static str {
        match self {
            Preset::OpenAi => OPENAI_BASE_URL,
            Preset::OpenRouter => "https://openrouter.ai/api/v1",
            Preset::Groq => "https://api.groq.com/openai/v1",
            Preset::Together => "https://api.together.xyz/v1",
            Preset::DeepSeek => "https://api.deepseek.com/v1",
            Preset::Mistral => "https://api.mistral.ai/v1",
            Preset::Fireworks => "https://api.fireworks.ai/inference/v1",
            Preset::Vllm => "http://127.0.0.1:8000/v1",
            Preset::Ollama => "http://127.0.0.1:11434/v1",
            Preset::LmStudio => "http://127.0.0.1:1234/v1",
            Preset::LlamaCpp => "http://127.0.0.1:8080/v1",
        }
    }

    /// Whether a chat-completions body an OpenAI client wrote goes to this server as it
    /// is (exact passthrough): true for servers that implement OpenAI's API itself
    /// (OpenAI, Azure OpenAI, OpenRouter). For the others the quirks above rewrite
    /// fields, so the host translates through the canonical request instead.
    pub fn passes_through(self) -> bool {
        matches!(self, Preset::OpenAi | Preset::OpenRouter)
    }

    /// The server's quirks, each with what it is based on.
    pub fn quirks(self) -> Quirks {
        match self {
            Preset::OpenAi => OPENAI,
            // openrouter.ai/docs/use-cases/usage-accounting: "The usage: {include: true}
            // and stream_options: {include_usage: true} parameters are deprecated and have
            // no effect. Full usage details are now always included" (last SSE message).
            // openrouter.ai/docs/use-cases/reasoning-tokens: reasoning is controlled by
            // `reasoning: {effort}`, comes back in each message's `reasoning` field and as
            // `reasoning_details` blocks, which are to be passed back unmodified on later
            // turns ("Preserving reasoning blocks").
            Preset::OpenRouter => Quirks {
                effort: EffortField::OpenRouterReasoning,
                developer_role: true,
                reasoning_details_history: true,
                ..COMPATIBLE
            },
            // Groq rejected `stream_options` in May 2024 ("property 'stream_options' is
            // unsupported", vercel/ai#1578) but accepts it since (Portkey-AI/gateway#1338
            // shows the extra usage chunk, Sept 2025); usage also rides on the last
            // chunk's `x_groq.usage`, which the decoder reads. `max_completion_tokens`
            // since groq/groq-python#175, `max_tokens` deprecated in its favour.
            Preset::Groq => Quirks {
                stream_usage: true,
                token_limit: TokenLimit::MaxCompletionTokens,
                ..COMPATIBLE
            },
            // Together's own SDK (together-python types/chat_completions.py) has no
            // `stream_options` in its request and a `usage` on every stream chunk: usage
            // comes without asking. `max_tokens` is its limit field.
            Preset::Together => COMPATIBLE,
            // api-docs.deepseek.com (create chat completion): `stream_options.include_usage`
            // and `max_tokens`. Thinking mode: "For turns that do perform tool calls, the
            // reasoning_content must be fully passed back to the API in all subsequent
            // requests" or the API answers 400 (quoted in anomalyco/opencode#24722).
            Preset::DeepSeek => Quirks {
                stream_usage: true,
                reasoning_history: true,
                ..COMPATIBLE
            },
            // Mistral validates strictly (pydantic `extra_forbidden`, HTTP 422):
            // `stream_options` is rejected (avante.nvim#2347), so is
            // `max_completion_tokens` (editor-code-assistant/eca#231). Its request model
            // (mistralai/client-python ChatCompletionStreamRequest) names the seed
            // `random_seed` and has no `user`; its messages have no participant `name`
            // and the roles are system, user, assistant and tool. The final chunk carries
            // `usage` unasked.
            Preset::Mistral => Quirks {
                seed_field: "random_seed",
                send_user: false,
                message_names: false,
                ..COMPATIBLE
            },
            // docs.fireworks.ai/api-reference/post-chatcompletions: `max_tokens` (default
            // 2000), no `stream_options` and no `max_completion_tokens` in the schema.
            Preset::Fireworks => COMPATIBLE,
            // vLLM's OpenAI server implements `stream_options.include_usage` (and
            // `continuous_usage_stats`); `max_tokens` works on every version.
            Preset::Vllm => Quirks {
                stream_usage: true,
                ..COMPATIBLE
            },
            // Ollama returns usage as a final chunk when asked (ollama commit "openai:
            // return usage as final chunk for streams"); docs/openai.md lists `max_tokens`.
            Preset::Ollama => Quirks {
                stream_usage: true,
                ..COMPATIBLE
            },
            // LM Studio ignores `stream_options` (lmstudio-bug-tracker#713, open in 2025:
            // no usage chunk, but no error either), so asking costs nothing and pays off on
            // versions that implement it.
            Preset::LmStudio => Quirks {
                stream_usage: true,
                ..COMPATIBLE
            },
            // llama-server implements `stream_options.include_usage` (janhq/cortex.llamacpp
            // #265 and mozilla-ai/llamafile#713 brought the same to its forks); some
            // versions end the stream after the finish chunk without `[DONE]`, which the
            // decoder accepts for every preset.
            Preset::LlamaCpp => Quirks {
                stream_usage: true,
                ..COMPATIBLE
            },
        }
    }
}

/// Quirks of Azure OpenAI for one API version.
///
/// - `stream_options` exists from `2024-09-01-preview` on (Azure "API preview
///   lifecycle" page: "Changes between 2024-09-01-preview and 2024-08-01-preview ...
///   stream_options & include_usage added"), but the GA `2024-10-21` spec
///   (azure-rest-api-specs .../inference/stable/2024-10-21/inference.json) has no
///   `stream_options` in `createChatCompletionRequest`, and Azure answers
///   "Unrecognized request argument supplied" for fields a version does not know.
/// - `max_completion_tokens` is accepted or refused depending on the version *and* the
///   deployment (openai/openai-python#1724, BerriAI/litellm#8855), while o-series
///   deployments refuse `max_tokens`: the client's own choice is passed unchanged.
pub fn azure_quirks(api_version: &str) -> Quirks {
    let date = api_version.get(..10).unwrap_or("");
    let dated = date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    Quirks {
        stream_usage: dated && date >= "2024-09-01" && api_version != "2024-10-21",
        token_limit: TokenLimit::AsSent,
        ..OPENAI
    }
}

/// Options an entry may set, e.g. `{"preset": "openrouter", "title": "My app"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// One of [`Preset::ALL`]; `openai` by default.
    preset: Option<String>,
    /// OpenRouter's optional `HTTP-Referer` header (your site's URL).
    referer: Option<String>,
    /// OpenRouter's optional `X-Title` header (your app's name).
    title: Option<String>,
    /// Azure OpenAI mode.
    azure: Option<AzureOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AzureOptions {
    /// The `api-version` query parameter.
    api_version: Option<String>,
}

/// Azure OpenAI addressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Azure {
    /// The `api-version` query parameter.
    pub api_version: String,
}

/// Everything a provider instance needs to know about its entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The server family.
    pub preset: Preset,
    /// Azure mode, when the entry asked for it.
    pub azure: Option<Azure>,
    /// The base URL, without a trailing `/`.
    pub base_url: String,
    /// The server's quirks.
    pub quirks: Quirks,
    /// Headers added to every request (OpenRouter's attribution headers).
    pub headers: Vec<(String, String)>,
}

fn config_error(message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_request(message)
}

fn preset_names() -> String {
    Preset::ALL.map(Preset::name).join(", ")
}

impl Settings {
    /// Reads an entry's options and base URL; unknown options, unknown presets and
    /// options that do not apply are errors that say what is valid.
    pub fn from_config(config: &ProviderConfig) -> Result<Settings, ProviderError> {
        let options: Options = match &config.options {
            Value::Null => Options::default(),
            options => serde_json::from_value(options.clone()).map_err(|e| {
                config_error(format!(
                    "openai options: {e} (valid options: preset, referer, title, azure)"
                ))
            })?,
        };
        let preset = match options.preset.as_deref() {
            None => Preset::OpenAi,
            Some(name) => Preset::parse(name).ok_or_else(|| {
                config_error(format!(
                    "openai options: unknown preset `{name}`; valid presets: {}",
                    preset_names()
                ))
            })?,
        };
        if preset != Preset::OpenRouter {
            for (option, set) in [
                ("referer", options.referer.is_some()),
                ("title", options.title.is_some()),
            ] {
                if set {
                    return Err(config_error(format!(
                        "openai options: `{option}` is an OpenRouter header and needs `\"preset\": \"openrouter\"`"
                    )));
                }
            }
        }
        let base_url = config
            .base_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let (azure, quirks, base_url) = match options.azure {
            Some(azure) => {
                if preset != Preset::OpenAi {
                    return Err(config_error(format!(
                        "openai options: `azure` cannot be combined with preset `{}`",
                        preset.name()
                    )));
                }
                let api_version = azure
                    .api_version
                    .unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.to_owned());
                if api_version.is_empty()
                    || !api_version
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(config_error(format!(
                        "openai options: azure.api_version `{api_version}` is not an API version such as {AZURE_DEFAULT_API_VERSION}"
                    )));
                }
                let base_url = base_url.ok_or_else(|| {
                    config_error(
                        "azure mode needs the entry's base_url: your resource's endpoint, e.g. https://my-resource.openai.azure.com",
                    )
                })?;
                let quirks = azure_quirks(&api_version);
                (Some(Azure { api_version }), quirks, base_url)
            }
            None => (
                None,
                preset.quirks(),
                base_url.unwrap_or_else(|| preset.default_base_url().to_owned()),
            ),
        };
        if !base_url.starts_with("http://") && !base_url.starts_with("https://") {
            return Err(config_error(format!(
                "base_url `{base_url}` is not an http(s) URL"
            )));
        }
        let mut headers = Vec::new();
        // openrouter.ai/docs (quickstart / app attribution): optional `HTTP-Referer`
        // (site URL) and `X-Title` (site name) headers rank the app on openrouter.ai.
        if let Some(referer) = options.referer {
            headers.push(("HTTP-Referer".to_owned(), referer));
        }
        if let Some(title) = options.title {
            headers.push(("X-Title".to_owned(), title));
        }
        for (name, value) in &headers {
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(config_error(format!(
                    "openai options: the {name} header value has a control character"
                )));
            }
        }
        Ok(Settings {
            preset,
            azure,
            base_url,
            quirks,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(base_url: Option<&str>, options: Value) -> Result<Settings, ProviderError> {
        Settings::from_config(&ProviderConfig {
            name: "entry".to_owned(),
            base_url: base_url.map(str::to_owned),
            options,
        })
    }

    #[test]
    fn without_options_it_is_openai_at_its_default_url() {
        let s = settings(None, Value::Null).unwrap();
        assert_eq!(s.preset, Preset::OpenAi);
        assert_eq!(s.base_url, "https://api.openai.com/v1");
        assert_eq!(s.quirks, OPENAI);
        assert!(s.azure.is_none() && s.headers.is_empty());
    }

    #[test]
    fn each_preset_has_its_documented_default_url() {
        let expected = [
            ("openai", "https://api.openai.com/v1"),
            ("openrouter", "https://openrouter.ai/api/v1"),
            ("groq", "https://api.groq.com/openai/v1"),
            ("together", "https://api.together.xyz/v1"),
            ("deepseek", "https://api.deepseek.com/v1"),
            ("mistral", "https://api.mistral.ai/v1"),
            ("fireworks", "https://api.fireworks.ai/inference/v1"),
            ("vllm", "http://127.0.0.1:8000/v1"),
            ("ollama", "http://127.0.0.1:11434/v1"),
            ("lmstudio", "http://127.0.0.1:1234/v1"),
            ("llamacpp", "http://127.0.0.1:8080/v1"),
        ];
        assert_eq!(expected.len(), Preset::ALL.len());
        for (name, url) in expected {
            let s = settings(None, json!({ "preset": name })).unwrap();
            assert_eq!((s.preset.name(), s.base_url.as_str()), (name, url));
        }
    }

    #[test]
    fn the_entry_base_url_wins_and_loses_its_trailing_slash() {
        let s = settings(Some("http://10.0.0.5:8000/v1/"), json!({"preset": "vllm"})).unwrap();
        assert_eq!(s.base_url, "http://10.0.0.5:8000/v1");
    }

    #[test]
    fn an_unknown_preset_is_an_error_listing_the_valid_ones() {
        let e = settings(None, json!({"preset": "antropic"})).unwrap_err();
        assert!(
            e.message.contains("unknown preset `antropic`"),
            "{}",
            e.message
        );
        for preset in Preset::ALL {
            assert!(e.message.contains(preset.name()), "{}", e.message);
        }
    }

    #[test]
    fn an_unknown_option_is_an_error_naming_the_valid_ones() {
        let e = settings(None, json!({"presets": "groq"})).unwrap_err();
        assert!(
            e.message.contains("unknown field `presets`"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("preset, referer, title, azure"),
            "{}",
            e.message
        );
        let e = settings(None, json!({"azure": {"version": "x"}})).unwrap_err();
        assert!(
            e.message.contains("unknown field `version`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn openrouter_headers_only_apply_to_openrouter() {
        let s = settings(
            None,
            json!({"preset": "openrouter", "referer": "https://example.org", "title": "Example"}),
        )
        .unwrap();
        assert_eq!(
            s.headers,
            vec![
                ("HTTP-Referer".to_owned(), "https://example.org".to_owned()),
                ("X-Title".to_owned(), "Example".to_owned())
            ]
        );
        let e = settings(None, json!({"preset": "groq", "title": "Example"})).unwrap_err();
        assert!(
            e.message.contains("`title` is an OpenRouter header"),
            "{}",
            e.message
        );
    }

    #[test]
    fn azure_needs_a_base_url_and_defaults_to_the_ga_version() {
        let e = settings(None, json!({"azure": {}})).unwrap_err();
        assert!(
            e.message.contains("azure mode needs the entry's base_url"),
            "{}",
            e.message
        );
        let s = settings(Some("https://res.openai.azure.com/"), json!({"azure": {}})).unwrap();
        assert_eq!(s.base_url, "https://res.openai.azure.com");
        assert_eq!(s.azure.unwrap().api_version, "2024-10-21");
        let e = settings(
            Some("https://res.openai.azure.com"),
            json!({"azure": {}, "preset": "groq"}),
        )
        .unwrap_err();
        assert!(e.message.contains("cannot be combined"), "{}", e.message);
        let e = settings(
            Some("https://res.openai.azure.com"),
            json!({"azure": {"api_version": "2024-10-21&x=1"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("not an API version"), "{}", e.message);
    }

    #[test]
    fn azure_streams_usage_only_on_versions_that_know_stream_options() {
        assert!(!azure_quirks("2024-06-01").stream_usage);
        assert!(!azure_quirks("2024-08-01-preview").stream_usage);
        assert!(azure_quirks("2024-09-01-preview").stream_usage);
        assert!(
            !azure_quirks("2024-10-21").stream_usage,
            "GA spec has no stream_options"
        );
        assert!(azure_quirks("2025-04-01-preview").stream_usage);
        assert!(!azure_quirks("latest").stream_usage);
        assert_eq!(azure_quirks("2024-10-21").token_limit, TokenLimit::AsSent);
    }

    #[test]
    fn a_non_http_base_url_is_refused() {
        let e = settings(Some("ftp://example.org"), Value::Null).unwrap_err();
        assert!(e.message.contains("not an http(s) URL"), "{}", e.message);
    }
}
