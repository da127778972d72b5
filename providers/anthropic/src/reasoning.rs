//! The one place where Anthropic's thinking blocks meet the SDK's `reasoning_details`.
//!
//! Anthropic signs every `thinking` block and encrypts `redacted_thinking` blocks; a
//! later turn must carry them back unmodified (with their signatures) or a tool loop
//! with thinking fails. The SDK's [`ReasoningDetail`] is the OpenRouter-style carrier
//! that OpenAI-compatible clients echo back on the assistant message they received:
//!
//! | Anthropic block                                   | `ReasoningDetail`                                              |
//! |---------------------------------------------------|----------------------------------------------------------------|
//! | `{"type":"thinking","thinking":T,"signature":S}`  | `{"type":"reasoning.text","text":T,"signature":S,"format":F}`  |
//! | `{"type":"redacted_thinking","data":D}`           | `{"type":"reasoning.encrypted","data":D,"format":F}`           |
//!
//! with `F` = [`FORMAT`]. Both directions live here and nowhere else.

use provider_sdk::ReasoningDetail;
use serde_json::{json, Value};

/// The `format` tag of the details this provider produces (the name OpenRouter uses for
/// the same blocks, so details from either gateway are interchangeable).
pub const FORMAT: &str = "anthropic-claude-v1";

/// `reasoning.text`: visible (possibly summarized) thinking with its signature.
const TEXT: &str = "reasoning.text";
/// `reasoning.encrypted`: opaque reasoning (Anthropic's redacted thinking).
const ENCRYPTED: &str = "reasoning.encrypted";

/// The detail for a signed thinking block.
pub fn thinking_detail(text: impl Into<String>, signature: Option<String>) -> ReasoningDetail {
    ReasoningDetail {
        kind: TEXT.to_owned(),
        text: Some(text.into()),
        signature: signature.filter(|s| !s.is_empty()),
        data: None,
        format: Some(FORMAT.to_owned()),
    }
}

/// The detail for a `redacted_thinking` block.
pub fn redacted_detail(data: impl Into<String>) -> ReasoningDetail {
    ReasoningDetail {
        kind: ENCRYPTED.to_owned(),
        text: None,
        signature: None,
        data: Some(data.into()),
        format: Some(FORMAT.to_owned()),
    }
}

/// The detail for a content block of a response, if it is a thinking block.
pub fn detail_from_block(block: &Value) -> Option<ReasoningDetail> {
    match block["type"].as_str()? {
        "thinking" => Some(thinking_detail(
            block["thinking"].as_str().unwrap_or_default(),
            block["signature"].as_str().map(str::to_owned),
        )),
        "redacted_thinking" => Some(redacted_detail(block["data"].as_str()?)),
        _ => None,
    }
}

/// The Anthropic block to send back for a detail a client echoed, or `None` when the
/// detail cannot be replayed: another provider's format, a summary, or thinking text
/// without its signature (the API rejects unsigned thinking).
pub fn block_from_detail(detail: &ReasoningDetail) -> Option<Value> {
    if matches!(detail.format.as_deref(), Some(f) if !f.starts_with("anthropic-claude")) {
        return None;
    }
    match detail.kind.as_str() {
        TEXT => {
            let signature = detail.signature.as_deref().filter(|s| !s.is_empty())?;
            Some(json!({
                "type": "thinking",
                "thinking": detail.text.as_deref().unwrap_or_default(),
                "signature": signature,
            }))
        }
        ENCRYPTED => Some(json!({"type": "redacted_thinking", "data": detail.data.as_deref()?})),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::REDACTED_THINKING_RESPONSE;

    fn documented_blocks() -> Vec<Value> {
        let response: Value = serde_json::from_str(REDACTED_THINKING_RESPONSE).unwrap();
        response["content"].as_array().unwrap().clone()
    }

    #[test]
    fn a_thinking_and_a_redacted_block_survive_the_trip_through_reasoning_details_unchanged() {
        let blocks = documented_blocks();
        let details: Vec<_> = blocks.iter().filter_map(detail_from_block).collect();
        assert_eq!(details.len(), 2, "the text block is not reasoning");
        assert_eq!(details[0].kind, "reasoning.text");
        assert_eq!(details[1].kind, "reasoning.encrypted");
        // What a client echoes is the JSON it received.
        let echoed: Vec<ReasoningDetail> =
            serde_json::from_value(serde_json::to_value(&details).unwrap()).unwrap();
        let back: Vec<Value> = echoed.iter().filter_map(block_from_detail).collect();
        assert_eq!(
            back,
            blocks[..2],
            "byte-identical blocks, signatures included"
        );
    }

    #[test]
    fn details_that_cannot_be_verified_are_not_replayed() {
        let unsigned = thinking_detail("I think...", None);
        assert_eq!(block_from_detail(&unsigned), None);
        let foreign = ReasoningDetail {
            format: Some("openai-responses-v1".to_owned()),
            ..redacted_detail("gAAAA")
        };
        assert_eq!(block_from_detail(&foreign), None);
        let summary = ReasoningDetail {
            kind: "reasoning.summary".to_owned(),
            text: Some("summary".to_owned()),
            ..ReasoningDetail::default()
        };
        assert_eq!(block_from_detail(&summary), None);
        let untagged = ReasoningDetail {
            format: None,
            ..thinking_detail("t", Some("sig".to_owned()))
        };
        assert_eq!(
            block_from_detail(&untagged),
            Some(json!({"type": "thinking", "thinking": "t", "signature": "sig"})),
            "a client that drops `format` still gets its signed thinking replayed"
        );
    }
}
