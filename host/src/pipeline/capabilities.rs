//! What a request needs from a target's plugin (streaming, tools, images, reasoning),
//! checked against the capabilities its manifest declares.

use provider_sdk::{Capabilities, ChatRequest, Content, ContentPart, Message};

/// The capability `request` needs that `offered` lacks, if any.
pub(super) fn missing_capability(
    request: &ChatRequest,
    offered: &Capabilities,
) -> Option<&'static str> {
    let images = request.messages.iter().any(|m| match m {
        Message::User {
            content: Content::Parts(parts),
            ..
        } => parts
            .iter()
            .any(|p| matches!(p, ContentPart::ImageUrl { .. })),
        _ => false,
    });
    if request.stream && !offered.streaming {
        Some("streaming")
    } else if !request.tools.is_empty() && !offered.tools {
        Some("tools")
    } else if images && !offered.vision {
        Some("image input (vision)")
    } else if request.reasoning_effort.is_some() && !offered.reasoning {
        Some("reasoning")
    } else {
        None
    }
}
