//! The cache key: what makes two requests the same question. The protocol, the model
//! string the client named (an alias or `provider/model`), the partition (the client
//! key, unless the cache is shared on purpose) and the request itself, normalized so
//! that field order and whitespace do not matter, hashed with SHA-256.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Members that say how the answer is delivered, not what it is: a streamed answer
/// serves a whole request and the other way round, and the model is keyed as named.
const DELIVERY_MEMBERS: [&str; 3] = ["model", "stream", "stream_options"];

/// What a key is made of.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    /// The client's protocol (`openai_chat`, `anthropic_messages`, ... or `canonical`).
    pub protocol: &'a str,
    /// The model string as the client named it.
    pub model: &'a str,
    /// The client key's name, or `None` for a cache shared by every client.
    pub partition: Option<&'a str>,
}

/// The key of `request` (a JSON body, the client's own or the canonical request), as
/// 64 hex digits.
pub fn key(parts: KeyParts<'_>, request: &Value) -> String {
    let mut hasher = Sha256::new();
    // Each part is length-prefixed, so no two different tuples hash the same bytes.
    for part in [
        "provider-host-cache-v1",
        parts.protocol,
        parts.model,
        parts.partition.unwrap_or("\u{0}shared"),
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    let mut canonical = Vec::with_capacity(256);
    match request {
        Value::Object(members) => {
            let kept: Vec<(&String, &Value)> = members
                .iter()
                .filter(|(name, _)| !DELIVERY_MEMBERS.contains(&name.as_str()))
                .collect();
            write_object(kept, &mut canonical);
        }
        other => write(other, &mut canonical),
    }
    hasher.update(&canonical);
    hex(&hasher.finalize())
}

/// `value` as compact JSON with every object's members sorted by name.
fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => write_object(members.iter().collect(), out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        scalar => {
            serde_json::to_writer(&mut *out, scalar).expect("a JSON scalar serializes");
        }
    }
}

fn write_object(mut members: Vec<(&String, &Value)>, out: &mut Vec<u8>) {
    members.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, name).expect("a string serializes");
        out.push(b':');
        write(value, out);
    }
    out.push(b'}');
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARTS: KeyParts<'static> = KeyParts {
        protocol: "openai_chat",
        model: "fast",
        partition: Some("team-a"),
    };

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn field_order_whitespace_and_delivery_do_not_change_the_key() {
        let a = parsed(
            r#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"temperature":0.5}"#,
        );
        let b = parsed(
            r#"{ "temperature": 0.5,
                 "messages": [ {"content": "hi", "role": "user"} ],
                 "stream": true, "stream_options": {"include_usage": true}, "model": "other" }"#,
        );
        assert_eq!(key(PARTS, &a), key(PARTS, &b));
    }

    #[test]
    fn the_question_the_model_the_protocol_and_the_tenant_each_change_the_key() {
        let request = json!({"messages": [{"role": "user", "content": "hi"}]});
        let base = key(PARTS, &request);
        let other_text = json!({"messages": [{"role": "user", "content": "hi!"}]});
        assert_ne!(base, key(PARTS, &other_text));
        let sampled = json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 1});
        assert_ne!(base, key(PARTS, &sampled));
        for parts in [
            KeyParts {
                model: "smart",
                ..PARTS
            },
            KeyParts {
                protocol: "anthropic_messages",
                ..PARTS
            },
            KeyParts {
                partition: Some("team-b"),
                ..PARTS
            },
            KeyParts {
                partition: None,
                ..PARTS
            },
        ] {
            assert_ne!(base, key(parts, &request), "{parts:?}");
        }
        assert_eq!(base.len(), 64);
    }
}
