//! The preset type: everything that tells one OpenAI-compatible server from another
//! (name, default base URL, key variable, auth scheme, headers, models, quirks), and the
//! [`Settings`] an entry's `options` settle into.
//!
//! A preset is plain `const` data, so a provider for a new OpenAI-compatible service is
//! one `Preset` value; [`crate::openai::presets`] holds the ones this workspace ships.

use provider_sdk::{AuthScheme, Capabilities, ProviderConfig, ProviderError};
use serde_json::{Map, Value};

use crate::manifest::Model;

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
    /// The embeddings request's name for `dimensions` (Mistral: `output_dimension`).
    pub dimensions_field: &'static str,
}

impl Quirks {
    /// OpenAI's own API, as the API reference documents it.
    pub const OPENAI: Quirks = Quirks {
        // API reference, Create chat completion: `stream_options.include_usage`.
        stream_usage: true,
        // API reference: `max_tokens` is "deprecated in favor of max_completion_tokens,
        // and is not compatible with o-series models".
        token_limit: TokenLimit::MaxCompletionTokens,
        seed_field: "seed",
        send_user: true,
        message_names: true,
        developer_role: true,
        reasoning_history: false,
        reasoning_details_history: false,
        effort: EffortField::ReasoningEffort,
        dimensions_field: "dimensions",
    };

    /// The conservative baseline for other servers: only fields every OpenAI-compatible
    /// server knows. `developer` becomes `system` (a role every chat template has) and
    /// `max_tokens` is used (accepted by every server; `max_completion_tokens` is newer).
    pub const COMPATIBLE: Quirks = Quirks {
        stream_usage: false,
        token_limit: TokenLimit::MaxTokens,
        developer_role: false,
        ..Quirks::OPENAI
    };
}

/// Where the host puts the API key, as `const` data (see [`AuthScheme`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No key.
    None,
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// A header of its own, such as Portkey's `x-portkey-api-key`.
    Header(&'static str),
}

impl Auth {
    /// The SDK's form of it.
    pub fn scheme(self) -> AuthScheme {
        match self {
            Auth::None => AuthScheme::None,
            Auth::Bearer => AuthScheme::Bearer,
            Auth::Header(name) => AuthScheme::Header {
                name: name.to_owned(),
            },
        }
    }
}

/// An entry option that becomes a request header, such as OpenRouter's
/// `"title": "My app"` → `X-Title: My app`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option's name in the entry's `options`.
    pub option: &'static str,
    /// The header it sets.
    pub header: &'static str,
}

/// One OpenAI-compatible server family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// The name used in `options.preset` (and the manifest's name when the preset is a
    /// plugin's first).
    pub name: &'static str,
    /// How people write the service's name (`OpenRouter`), for messages.
    pub title: &'static str,
    /// One line about the service, for the manifest.
    pub description: &'static str,
    /// The base URL used when the entry sets none.
    pub base_url: &'static str,
    /// The environment variable that holds the key by default.
    pub api_key_env: Option<&'static str>,
    /// Where the host puts the key.
    pub auth: Auth,
    /// Headers sent with every request.
    pub headers: &'static [(&'static str, &'static str)],
    /// Options of this preset that set a header.
    pub option_headers: &'static [OptionHeader],
    /// Whether an entry must set at least one of `option_headers` (Portkey needs to be
    /// told which provider to use).
    pub requires_option_header: bool,
    /// Well-known models with their context windows and prices.
    pub models: &'static [Model],
    /// What the server can do (`embeddings` says whether it has `/embeddings`).
    pub capabilities: Capabilities,
    /// Whether a chat-completions body an OpenAI client wrote goes to this server as it
    /// is (exact passthrough): only for servers that implement OpenAI's API itself.
    /// For the others the quirks rewrite fields, so the host translates instead.
    pub passthrough: bool,
    /// Whether the entry may switch to Azure OpenAI addressing (`options.azure`).
    pub azure: bool,
    /// The server's quirks.
    pub quirks: Quirks,
}

impl Preset {
    /// A compatible server with no key variable, models or headers: the base of a new
    /// preset (`Preset { name: "x", base_url: "...", ..Preset::COMPATIBLE }`).
    pub const COMPATIBLE: Preset = Preset {
        name: "",
        title: "",
        description: "",
        base_url: "",
        api_key_env: None,
        auth: Auth::Bearer,
        headers: &[],
        option_headers: &[],
        requires_option_header: false,
        models: &[],
        capabilities: Capabilities {
            streaming: true,
            tools: true,
            vision: true,
            reasoning: false,
            embeddings: false,
        },
        passthrough: false,
        azure: false,
        quirks: Quirks::COMPATIBLE,
    };
}

/// The latest GA version of Azure OpenAI's dated data-plane inference API.
///
/// Source: the "API specs" table of learn.microsoft.com/azure/ai-services/openai/reference
/// ("Data plane - inference | latest GA release 2024-10-21").
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

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
        ..Quirks::OPENAI
    }
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
    /// Headers added to every request: the preset's, its option headers', then the
    /// entry's own `headers`.
    pub headers: Vec<(String, String)>,
}

fn config_error(message: impl Into<String>) -> ProviderError {
    ProviderError::invalid_request(message)
}

/// Headers an entry may not set: the places API keys go, which are the host's alone.
const KEY_HEADERS: [&str; 3] = ["authorization", "api-key", "x-api-key"];

impl Settings {
    /// Reads an entry's options and base URL against a plugin's `presets` (the first is
    /// the default). Options: `preset` (when there are several), each preset's option
    /// headers, `azure` (for presets that allow it) and `headers` (extra headers, an
    /// object of strings). Unknown options, unknown presets and options that do not
    /// apply are errors that say what is valid.
    pub fn from_config(
        presets: &[Preset],
        config: &ProviderConfig,
    ) -> Result<Settings, ProviderError> {
        let default = presets
            .first()
            .ok_or_else(|| ProviderError::plugin_fault("the plugin declares no preset"))?;
        let plugin = default.name;
        let empty = Map::new();
        let options = match &config.options {
            Value::Null => &empty,
            Value::Object(options) => options,
            other => {
                return Err(config_error(format!(
                    "{plugin} options: expected an object, found {other}"
                )))
            }
        };
        let mut valid: Vec<&str> = Vec::new();
        if presets.len() > 1 {
            valid.push("preset");
        }
        for option in presets.iter().flat_map(|p| p.option_headers) {
            if !valid.contains(&option.option) {
                valid.push(option.option);
            }
        }
        if presets.iter().any(|p| p.azure) {
            valid.push("azure");
        }
        valid.push("headers");
        if let Some(unknown) = options.keys().find(|k| !valid.contains(&k.as_str())) {
            return Err(config_error(format!(
                "{plugin} options: unknown field `{unknown}` (valid options: {})",
                valid.join(", ")
            )));
        }
        let preset = match options.get("preset") {
            None => *default,
            Some(Value::String(name)) => {
                *presets.iter().find(|p| p.name == name).ok_or_else(|| {
                    config_error(format!(
                        "{plugin} options: unknown preset `{name}`; valid presets: {}",
                        presets
                            .iter()
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
            }
            Some(other) => {
                return Err(config_error(format!(
                    "{plugin} options: `preset` must be a string, found {other}"
                )))
            }
        };
        let mut headers: Vec<(String, String)> = preset
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        for option in presets.iter().flat_map(|p| p.option_headers) {
            let Some(value) = options.get(option.option) else {
                continue;
            };
            if !preset.option_headers.contains(option) {
                let owner = presets
                    .iter()
                    .find(|p| p.option_headers.contains(option))
                    .unwrap_or(&preset);
                let article = match owner.title.starts_with(['A', 'E', 'I', 'O', 'U']) {
                    true => "an",
                    false => "a",
                };
                return Err(config_error(format!(
                    "{plugin} options: `{}` is {article} {} header and needs `\"preset\": \"{}\"`",
                    option.option, owner.title, owner.name
                )));
            }
            let value = value.as_str().ok_or_else(|| {
                config_error(format!(
                    "{plugin} options: `{}` must be a string",
                    option.option
                ))
            })?;
            headers.push((option.header.to_owned(), value.to_owned()));
        }
        if preset.requires_option_header
            && !preset
                .option_headers
                .iter()
                .any(|o| options.contains_key(o.option))
        {
            let names: Vec<_> = preset.option_headers.iter().map(|o| o.option).collect();
            return Err(config_error(format!(
                "{plugin} options: the `{}` preset needs one of {} to say where requests go",
                preset.name,
                names.join(", ")
            )));
        }
        headers.extend(entry_headers(plugin, preset.auth, options.get("headers"))?);
        let base_url = config
            .base_url
            .as_deref()
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let (azure, quirks, base_url) = match options.get("azure") {
            Some(azure) => {
                if !preset.azure {
                    return Err(config_error(format!(
                        "{plugin} options: `azure` cannot be combined with preset `{}`",
                        preset.name
                    )));
                }
                let api_version = azure_version(plugin, azure)?;
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
                preset.quirks,
                base_url.unwrap_or_else(|| preset.base_url.to_owned()),
            ),
        };
        if !base_url.starts_with("http://") && !base_url.starts_with("https://") {
            return Err(config_error(format!(
                "base_url `{base_url}` is not an http(s) URL"
            )));
        }
        for (name, value) in &headers {
            if value.bytes().any(|b| b.is_ascii_control()) {
                return Err(config_error(format!(
                    "{plugin} options: the {name} header value has a control character"
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

/// `options.azure`: `{}` or `{"api_version": "..."}`.
fn azure_version(plugin: &str, azure: &Value) -> Result<String, ProviderError> {
    let Some(azure) = azure.as_object() else {
        return Err(config_error(format!(
            "{plugin} options: `azure` must be an object such as {{\"api_version\": \"{AZURE_DEFAULT_API_VERSION}\"}}"
        )));
    };
    if let Some(unknown) = azure.keys().find(|k| *k != "api_version") {
        return Err(config_error(format!(
            "{plugin} options: azure: unknown field `{unknown}` (valid: api_version)"
        )));
    }
    let api_version = match azure.get("api_version") {
        None => AZURE_DEFAULT_API_VERSION.to_owned(),
        Some(Value::String(v)) => v.clone(),
        Some(other) => {
            return Err(config_error(format!(
                "{plugin} options: azure.api_version must be a string, found {other}"
            )))
        }
    };
    if api_version.is_empty()
        || !api_version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(config_error(format!(
            "{plugin} options: azure.api_version `{api_version}` is not an API version such as {AZURE_DEFAULT_API_VERSION}"
        )));
    }
    Ok(api_version)
}

/// `options.headers`: extra headers for every request, never where a key goes.
fn entry_headers(
    plugin: &str,
    auth: Auth,
    headers: Option<&Value>,
) -> Result<Vec<(String, String)>, ProviderError> {
    let Some(headers) = headers else {
        return Ok(Vec::new());
    };
    let Some(headers) = headers.as_object() else {
        return Err(config_error(format!(
            "{plugin} options: `headers` must be an object of header names to strings"
        )));
    };
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(config_error(format!(
                "{plugin} options: headers: `{name}` is not a header name"
            )));
        }
        let lower = name.to_ascii_lowercase();
        let key_place = matches!(auth, Auth::Header(h) if h.eq_ignore_ascii_case(name));
        if KEY_HEADERS.contains(&lower.as_str()) || key_place {
            return Err(config_error(format!(
                "{plugin} options: headers: `{name}` is where the host puts the API key; set the key's variable (api_key_env) instead"
            )));
        }
        let Some(value) = value.as_str() else {
            return Err(config_error(format!(
                "{plugin} options: headers: `{name}` must be a string"
            )));
        };
        out.push((name.clone(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::presets::ALL_PRESETS;
    use provider_sdk::ProviderConfig;
    use serde_json::json;

    fn settings(base_url: Option<&str>, options: Value) -> Result<Settings, ProviderError> {
        Settings::from_config(
            ALL_PRESETS,
            &ProviderConfig {
                name: "entry".to_owned(),
                base_url: base_url.map(str::to_owned),
                options,
                resolved_base_url: None,
            },
        )
    }

    #[test]
    fn without_options_it_is_openai_at_its_default_url() {
        let s = settings(None, Value::Null).unwrap();
        assert_eq!(s.preset.name, "openai");
        assert_eq!(s.base_url, "https://api.openai.com/v1");
        assert_eq!(s.quirks, Quirks::OPENAI);
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
        for (name, url) in expected {
            let s = settings(None, json!({ "preset": name })).unwrap();
            assert_eq!((s.preset.name, s.base_url.as_str()), (name, url));
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
        for preset in ALL_PRESETS {
            assert!(e.message.contains(preset.name), "{}", e.message);
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
            e.message
                .contains("preset, referer, title, provider, virtual_key, config, azure, headers"),
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

    #[test]
    fn portkey_takes_its_key_in_its_own_header_and_needs_to_know_where_to_go() {
        let s = settings(
            None,
            json!({"preset": "portkey", "provider": "@openai-prod"}),
        )
        .unwrap();
        assert_eq!(s.base_url, "https://api.portkey.ai/v1");
        assert_eq!(s.preset.auth, Auth::Header("x-portkey-api-key"));
        assert_eq!(
            s.headers,
            vec![("x-portkey-provider".to_owned(), "@openai-prod".to_owned())]
        );
        let s = settings(
            None,
            json!({"preset": "portkey", "virtual_key": "vk-1", "config": "pc-1"}),
        )
        .unwrap();
        assert_eq!(
            s.headers,
            vec![
                ("x-portkey-virtual-key".to_owned(), "vk-1".to_owned()),
                ("x-portkey-config".to_owned(), "pc-1".to_owned())
            ]
        );
        let e = settings(None, json!({"preset": "portkey"})).unwrap_err();
        assert!(
            e.message
                .contains("needs one of provider, virtual_key, config"),
            "{}",
            e.message
        );
        let e = settings(None, json!({"virtual_key": "vk-1"})).unwrap_err();
        assert!(
            e.message.contains("`virtual_key` is a Portkey header"),
            "{}",
            e.message
        );
    }

    #[test]
    fn litellm_is_a_local_bearer_proxy_that_reports_stream_usage() {
        let s = settings(None, json!({"preset": "litellm"})).unwrap();
        assert_eq!(s.base_url, "http://127.0.0.1:4000/v1");
        assert_eq!((s.preset.auth, s.quirks.stream_usage), (Auth::Bearer, true));
        assert_eq!(s.preset.api_key_env, Some("LITELLM_API_KEY"));
    }

    #[test]
    fn an_entry_adds_headers_but_never_where_a_key_goes() {
        let s = settings(
            None,
            json!({"preset": "vllm", "headers": {"X-Team": "search"}}),
        )
        .unwrap();
        assert_eq!(s.headers, vec![("X-Team".to_owned(), "search".to_owned())]);
        for name in ["Authorization", "api-key", "X-Api-Key"] {
            let e = settings(None, json!({"headers": {name: "k"}})).unwrap_err();
            assert!(
                e.message.contains("where the host puts the API key"),
                "{}",
                e.message
            );
        }
        let e = settings(
            None,
            json!({"preset": "portkey", "provider": "p", "headers": {"x-portkey-api-key": "k"}}),
        )
        .unwrap_err();
        assert!(
            e.message.contains("where the host puts the API key"),
            "{}",
            e.message
        );
        let e = settings(None, json!({"headers": {"bad name": "v"}})).unwrap_err();
        assert!(e.message.contains("is not a header name"), "{}", e.message);
        let e = settings(None, json!({"headers": {"X-A": "a\r\nb"}})).unwrap_err();
        assert!(e.message.contains("control character"), "{}", e.message);
    }
}
