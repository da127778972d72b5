//! The traffic every benchmark uses: a typical ~2 KB chat request, a typical
//! `chat.completion` answer, and the SSE chunks of a streamed answer, as OpenAI's API
//! reference shapes them. Shared by the load benchmark and the micro-benchmarks so the
//! two measure the same bytes.

use serde_json::{json, Value};

/// The model the fake upstream answers as.
pub const MODEL: &str = "gpt-4o-mini";

const SYSTEM: &str = "You are a support assistant for an online bookshop. Answer in the \
customer's language, in at most three short paragraphs. Never invent order numbers, \
prices or delivery dates: when the customer asks about an order, use only what the \
conversation contains and otherwise ask for the order number. Be polite, concrete and \
brief; do not repeat the question back. If the request is outside the shop's business \
(legal, medical or financial advice), say so and suggest where to ask instead. When \
you recommend books, give the title, the author and one sentence on why it fits, and \
recommend at most three. Prices are in euros and include VAT. Shipping is free above \
thirty euros within the EU; returns are accepted within thirty days if unread.";

/// A typical chat request of about 2 KB: a system prompt, three earlier turns and a
/// question, with the sampling fields a client usually sets. `model` is what the
/// client names (`openai/gpt-4o-mini` through the host, `gpt-4o-mini` directly).
pub fn chat_request(model: &str, stream: bool) -> Value {
    let mut request = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Hello! I ordered two books last week, order 48213, and only one arrived. The parcel looked intact. What should I do?"},
            {"role": "assistant", "content": "I'm sorry one book is missing from order 48213. Books from the same order sometimes ship separately when one comes from another warehouse; the second parcel usually follows within three working days. If nothing arrives by Friday, reply here and I will open a claim with the carrier."},
            {"role": "user", "content": "Thanks. While I wait, can you recommend something similar to The Name of the Wind? I liked the magic system and the slow, detailed storytelling."},
            {"role": "assistant", "content": "Gladly: The Lies of Locke Lamora by Scott Lynch (intricate heists and a richly built city), Mistborn: The Final Empire by Brandon Sanderson (a rule-based magic system at the heart of the plot), and A Wizard of Earthsea by Ursula K. Le Guin (a quieter, classic tale of a young mage)."},
            {"role": "user", "content": "Which of these is the best start for a teenager, and is it available in paperback?"}
        ],
        "temperature": 0.7,
        "top_p": 1.0,
        "max_tokens": 512,
        "user": "customer-48213",
        "stream": stream
    });
    if stream {
        request["stream_options"] = json!({"include_usage": true});
    }
    request
}

/// The same conversation as an Anthropic Messages request (the system prompt hoisted,
/// `max_tokens` required), for the path that translates between protocols.
pub fn messages_request_bytes(model: &str, stream: bool) -> Vec<u8> {
    let chat = chat_request(model, stream);
    let messages = chat["messages"].as_array().expect("messages");
    let request = json!({
        "model": model,
        "system": messages[0]["content"],
        "messages": messages[1..],
        "max_tokens": chat["max_tokens"],
        "temperature": chat["temperature"],
        "metadata": {"user_id": chat["user"]},
        "stream": stream
    });
    serde_json::to_vec(&request).expect("json")
}

/// The request above as compact JSON bytes (what a client sends).
pub fn chat_request_bytes(model: &str, stream: bool) -> Vec<u8> {
    serde_json::to_vec(&chat_request(model, stream)).expect("json")
}

const ANSWER: &str = "For a teenager I would start with A Wizard of Earthsea by Ursula K. \
Le Guin: it is short, beautifully written and the story of a young mage learning the \
cost of his power speaks directly to that age. It is available in paperback for 9.99 \
euros.\n\nMistborn is a great second step once they want something longer and faster; \
it is also in paperback, at 11.50 euros. The Lies of Locke Lamora has stronger \
language and violence, so I would keep it for later.";

/// A typical non-streamed answer (`chat.completion`), about 1 KB.
pub fn answer_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 412,
            "completion_tokens": 104,
            "total_tokens": 516,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306"
    }))
    .expect("json")
}

fn chunk(delta: Value, finish: Option<&str>, usage: Option<Value>) -> Vec<u8> {
    let mut chunk = json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
        "choices": if usage.is_some() { json!([]) } else {
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}])
        },
    });
    if let Some(usage) = usage {
        chunk["usage"] = usage;
    }
    let mut out = b"data: ".to_vec();
    out.extend(serde_json::to_vec(&chunk).expect("json"));
    out.extend_from_slice(b"\n\n");
    out
}

/// One typical SSE chunk carrying a word of content (about 250 bytes).
pub fn content_chunk(word: &str) -> Vec<u8> {
    chunk(json!({"content": word}), None, None)
}

/// The SSE body of a streamed answer with `content_chunks` chunks of text, as OpenAI
/// sends it: a role chunk, the content chunks, a finish chunk, a usage chunk (the
/// request asks for it) and `data: [DONE]`. Each element is one write of the fake.
pub fn stream_pieces(content_chunks: usize) -> Vec<Vec<u8>> {
    let words: Vec<&str> = ANSWER.split_inclusive(' ').collect();
    let mut pieces = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
        None,
    )];
    for i in 0..content_chunks {
        pieces.push(content_chunk(words[i % words.len()]));
    }
    pieces.push(chunk(json!({}), Some("stop"), None));
    pieces.push(chunk(
        json!({}),
        None,
        Some(json!({"prompt_tokens": 412, "completion_tokens": content_chunks, "total_tokens": 412 + content_chunks,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}})),
    ));
    pieces.push(b"data: [DONE]\n\n".to_vec());
    pieces
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_request_is_about_two_kilobytes() {
        let n = super::chat_request_bytes("openai/gpt-4o-mini", false).len();
        assert!((1800..2300).contains(&n), "{n}");
    }
}
