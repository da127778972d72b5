//! Exact passthrough: a client's own request body, sent to a target whose plugin
//! speaks the client's protocol natively. Only the top-level `model` (and the fields
//! the plugin asks to set) change; every other byte of every other field goes as the
//! client wrote it, unknown fields and beta features included.

use bytes::Bytes;
use provider_sdk::{HttpRequest, NativeRequest, Protocol};
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::{value::RawValue, Map, Value};

/// A request as the client wrote it, kept for targets that speak its protocol.
#[derive(Debug, Clone)]
pub struct NativeBody {
    /// The client's protocol.
    pub protocol: Protocol,
    /// The body, as received.
    pub body: Bytes,
    /// Client headers the protocol forwards to its native upstreams (such as
    /// `anthropic-version` and `anthropic-beta`), replacing the plugin's defaults.
    pub headers: Vec<(String, String)>,
    /// What translating the body to the canonical request had to leave out, one line
    /// each; a target that does not speak the protocol is skipped when this is not
    /// empty, so nothing is dropped silently.
    pub lost: Vec<String>,
}

/// Why a body could not be passed through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request body cannot be passed through: {0}")]
pub struct RewriteError(String);

/// The HTTP request that sends `native.body` to `model` as the plugin's `request` says.
pub fn upstream_request(
    native: &NativeBody,
    request: NativeRequest,
    model: &str,
) -> Result<HttpRequest, RewriteError> {
    let body = rewrite(&native.body, model, &request.set)?;
    let mut headers = request.headers;
    for (name, value) in &native.headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.clone(), value.clone()));
    }
    Ok(HttpRequest {
        method: request.method,
        url: request.url,
        headers,
        body,
    })
}

/// `body` (a JSON object) with `model` replaced and the fields of `set` set: an object
/// value is merged into the client's object of that name, anything else replaces it.
/// The other members are copied byte for byte, in their order.
pub fn rewrite(
    body: &[u8],
    model: &str,
    set: &Map<String, Value>,
) -> Result<Vec<u8>, RewriteError> {
    let members = top_level(body)?;
    let mut out = Vec::with_capacity(body.len() + model.len() + 64);
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str, value: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).expect("a string encodes");
        out.push(b':');
        out.extend_from_slice(value);
    };
    let encode = |v: &Value| serde_json::to_vec(v).expect("a JSON value encodes");
    let mut saw_model = false;
    for (key, raw) in &members {
        if key == "model" {
            saw_model = true;
            member(&mut out, key, &encode(&Value::String(model.to_owned())));
        } else if let Some(wanted) = set.get(key.as_str()) {
            member(&mut out, key, &encode(&merged(raw, wanted)));
        } else {
            // The client's bytes, copied once, straight into the new body.
            member(&mut out, key, raw.get().as_bytes());
        }
    }
    if !saw_model {
        member(&mut out, "model", &encode(&Value::String(model.to_owned())));
    }
    for (key, value) in set {
        if !members.iter().any(|(k, _)| k == key.as_str()) {
            member(&mut out, key, &encode(value));
        }
    }
    out.push(b'}');
    Ok(out)
}

fn merged(raw: &RawValue, wanted: &Value) -> Value {
    match (serde_json::from_str::<Value>(raw.get()), wanted) {
        (Ok(Value::Object(mut theirs)), Value::Object(ours)) => {
            for (k, v) in ours {
                theirs.insert(k.clone(), v.clone());
            }
            Value::Object(theirs)
        }
        _ => wanted.clone(),
    }
}

/// The top-level members of a JSON object, values left unparsed.
fn top_level(body: &[u8]) -> Result<Vec<(String, &RawValue)>, RewriteError> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                members.push((key, value));
            }
            Ok(members)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = (&mut de)
        .deserialize_map(Members)
        .map_err(|e| RewriteError(e.to_string()))?;
    de.end().map_err(|e| RewriteError(e.to_string()))?;
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_model_changes_and_every_other_byte_stays() {
        let body = br#"{"model":"anthropic/claude","max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"future_field":{"x":[1,2.50,"\u00e9"]}}"#;
        let out = rewrite(body, "claude-sonnet-4-5", &Map::new()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"future_field":{"x":[1,2.50,"\u00e9"]}}"#
        );
    }

    #[test]
    fn set_fields_merge_into_the_clients_objects_or_are_added() {
        let set = json!({"stream_options": {"include_usage": true}, "extra": 1});
        let set = set.as_object().unwrap();
        let merged = rewrite(
            br#"{"stream":true,"stream_options":{"include_obfuscation":false},"model":"a/b"}"#,
            "b",
            set,
        )
        .unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(
            merged,
            json!({"stream": true, "model": "b", "extra": 1,
                   "stream_options": {"include_obfuscation": false, "include_usage": true}})
        );
    }

    #[test]
    fn a_body_that_is_not_one_json_object_is_refused() {
        assert!(rewrite(b"[1,2]", "m", &Map::new()).is_err());
        assert!(rewrite(br#"{"a":1} trailing"#, "m", &Map::new()).is_err());
    }

    #[test]
    fn client_headers_replace_the_plugins_defaults_case_insensitively() {
        let native = NativeBody {
            protocol: Protocol::AnthropicMessages,
            body: Bytes::from_static(br#"{"model":"x"}"#),
            headers: vec![("anthropic-version".into(), "2026-10-21".into())],
            lost: Vec::new(),
        };
        let request = NativeRequest::post_json("https://up/v1/messages")
            .header("Anthropic-Version", "2023-06-01");
        let http = upstream_request(&native, request, "claude").unwrap();
        let versions: Vec<_> = http
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("anthropic-version"))
            .collect();
        assert_eq!(
            versions,
            [&("anthropic-version".to_owned(), "2026-10-21".to_owned())]
        );
        assert_eq!(http.body, br#"{"model":"claude"}"#);
    }
}
