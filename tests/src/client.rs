//! The client's side of the suite: what an OpenAI client does against a host (send a
//! chat, read a whole or a streamed answer, read an error), and the setup the provider
//! tests share: a host whose one provider entry is served by a [`FakeUpstream`], and the
//! request that fake received.

use serde_json::{json, Value};

use crate::{
    fake::{FakeUpstream, Received, Reply},
    sse_data, Scratch, Server,
};

/// `POST /v1/chat/completions` with `request`, as an OpenAI client sends it.
pub async fn send_chat(server: &Server, request: &Value) -> reqwest::Response {
    send_chat_as(server, None, &[], request).await
}

/// [`send_chat`] with `Authorization: Bearer <key>` when a `key` is given, and `headers`.
pub async fn send_chat_as(
    server: &Server,
    key: Option<&str>,
    headers: &[(&str, &str)],
    request: &Value,
) -> reqwest::Response {
    let mut post = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .json(request);
    if let Some(key) = key {
        post = post.bearer_auth(key);
    }
    for (name, value) in headers {
        post = post.header(*name, *value);
    }
    post.send().await.expect("the host answers")
}

/// The body of `response` as JSON, failing with the text when it is not JSON.
pub async fn json_body(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("a JSON body ({e}): {text}"))
}

/// What `server` counted so far: its `/admin/usage` summary (totals, and per provider,
/// model and client).
pub async fn usage(server: &Server) -> Value {
    json_body(
        reqwest::get(format!("{}/admin/usage", server.url))
            .await
            .expect("the host answers /admin/usage"),
    )
    .await
}

/// The whole answer to `request`: status 200 and a `chat.completion` body with one choice,
/// the assistant's.
pub async fn whole_answer(server: &Server, request: &Value) -> Value {
    let response = send_chat(server, request).await;
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(status, 200, "{text}");
    let completion: Value = serde_json::from_str(&text).expect("a JSON body");
    assert_eq!(completion["object"], "chat.completion", "{completion}");
    assert_eq!(
        completion["choices"].as_array().map(Vec::len),
        Some(1),
        "{completion}"
    );
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    completion
}

/// The streamed answer to `request`, read by [`StreamedAnswer::read`].
pub async fn streamed_answer(server: &Server, request: &Value) -> StreamedAnswer {
    StreamedAnswer::read(send_chat(server, request).await).await
}

/// A streamed tool call as a client assembles it: `(index, id, name, arguments)`.
pub type ToolCall = (u64, String, String, String);

/// A streamed answer as an OpenAI client reads it.
#[derive(Debug)]
pub struct StreamedAnswer {
    /// Every `chat.completion.chunk`, in order.
    pub chunks: Vec<Value>,
    /// The error events (`{"error": ...}`) that came among the chunks, in order.
    pub errors: Vec<Value>,
}

impl StreamedAnswer {
    /// Reads a streamed answer that ran to its end: the framing checks of
    /// [`StreamedAnswer::read_allowing_errors`], and no error event.
    pub async fn read(response: reqwest::Response) -> StreamedAnswer {
        let answer = StreamedAnswer::read_allowing_errors(response).await;
        assert!(
            answer.errors.is_empty(),
            "only chat.completion.chunks: {:?}",
            answer.errors
        );
        answer
    }

    /// Reads a streamed answer that may have broken off with error events, checking the
    /// SSE framing: status 200, `text/event-stream`, chunks of one id, `data: [DONE]` last.
    pub async fn read_allowing_errors(response: reqwest::Response) -> StreamedAnswer {
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("a text content-type");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let body = response.text().await.expect("a body");
        let mut data = sse_data(&body);
        assert_eq!(
            data.pop().as_deref(),
            Some("[DONE]"),
            "the stream ends with data: [DONE]: {body}"
        );
        let answer = StreamedAnswer::from_data(&data);
        assert!(!answer.chunks.is_empty(), "{body}");
        for chunk in &answer.chunks {
            assert_eq!(
                chunk["id"], answer.chunks[0]["id"],
                "one id for the whole stream"
            );
        }
        answer
    }

    /// The chunks and error events of an SSE body, its framing unchecked: a last
    /// `data: [DONE]` is dropped and every other `data:` payload must be JSON.
    pub fn parse(body: &str) -> StreamedAnswer {
        let mut data = sse_data(body);
        if data.last().is_some_and(|last| last == "[DONE]") {
            data.pop();
        }
        StreamedAnswer::from_data(&data)
    }

    /// Sorts `data` payloads into chunks and error events.
    fn from_data(data: &[String]) -> StreamedAnswer {
        let (mut chunks, mut errors) = (Vec::new(), Vec::new());
        for payload in data {
            let value: Value = serde_json::from_str(payload).expect("each data line is JSON");
            if value.get("error").is_some() {
                errors.push(value);
            } else {
                assert_eq!(value["object"], "chat.completion.chunk", "{value}");
                chunks.push(value);
            }
        }
        StreamedAnswer { chunks, errors }
    }

    /// The `delta` of each chunk that has a choice.
    fn deltas(&self) -> impl Iterator<Item = &Value> {
        self.chunks
            .iter()
            .filter_map(|c| c["choices"].as_array()?.first())
            .map(|choice| &choice["delta"])
    }

    /// The answer's text: the `content` deltas joined.
    pub fn text(&self) -> String {
        self.deltas()
            .filter_map(|d| d["content"].as_str())
            .collect()
    }

    /// The reasoning: the `reasoning_content` deltas joined.
    pub fn reasoning(&self) -> String {
        self.deltas()
            .filter_map(|d| d["reasoning_content"].as_str())
            .collect()
    }

    /// The `reasoning_details` entries, in order, as a client collects them.
    pub fn reasoning_details(&self) -> Vec<Value> {
        self.deltas()
            .filter_map(|d| d["reasoning_details"].as_array())
            .flatten()
            .cloned()
            .collect()
    }

    /// Every non-null `finish_reason`, in order.
    pub fn finish_reasons(&self) -> Vec<String> {
        self.chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .map(str::to_owned)
            .collect()
    }

    /// The one non-null `finish_reason`.
    pub fn finish_reason(&self) -> String {
        let mut reasons = self.finish_reasons();
        assert_eq!(reasons.len(), 1, "exactly one finish_reason: {reasons:?}");
        reasons.remove(0)
    }

    /// The final usage chunk's `usage` (a chunk with `choices: []`), if one came.
    pub fn usage(&self) -> Option<&Value> {
        let last = self.chunks.last()?;
        let usage = last.get("usage").filter(|u| !u.is_null())?;
        assert_eq!(
            last["choices"],
            json!([]),
            "usage comes in its own last chunk"
        );
        Some(usage)
    }

    /// The tool calls as a client accumulates them: by `index`, the id, type and name from
    /// the first delta of each call (and only there), the arguments concatenated.
    pub fn tool_calls(&self) -> Vec<ToolCall> {
        let mut calls: Vec<ToolCall> = Vec::new();
        for delta in self.deltas() {
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"]
                    .as_u64()
                    .expect("every tool-call delta has an index");
                let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
                match calls.iter_mut().find(|c| c.0 == index) {
                    Some(existing) => {
                        assert!(call.get("id").is_none(), "the id comes once: {call}");
                        existing.3.push_str(arguments);
                    }
                    None => {
                        assert_eq!(call["type"], "function", "{call}");
                        calls.push((
                            index,
                            call["id"]
                                .as_str()
                                .expect("a first delta has the id")
                                .to_owned(),
                            call["function"]["name"]
                                .as_str()
                                .expect("a first delta has the name")
                                .to_owned(),
                            arguments.to_owned(),
                        ));
                    }
                }
            }
        }
        calls
    }
}

/// `object` with `fields` added, each replacing the field of the same name.
pub fn with_fields(mut object: Value, fields: Value) -> Value {
    let fields = fields
        .as_object()
        .expect("fields are a JSON object")
        .clone();
    object
        .as_object_mut()
        .expect("a JSON object")
        .extend(fields);
    object
}

/// A provider entry served by `fake`.
///
/// `fields` are the provider's own: `name`, `library`, `options`, and `base_url` when the
/// API is not at the fake's root, either as a URL or as a path on the fake (`"/v1"`). The
/// entry reads its key from `key_env` and may call private addresses, since the fake
/// listens on loopback (unless `fields` say `"allow_private_network": false`).
pub fn entry_in_front_of(fake: &FakeUpstream, key_env: &str, fields: Value) -> Value {
    let defaults = json!({
        "base_url": fake.url,
        "api_key_env": key_env,
        "allow_private_network": true
    });
    let mut entry = with_fields(defaults, fields);
    if let Some(path) = entry["base_url"]
        .as_str()
        .filter(|url| url.starts_with('/'))
    {
        entry["base_url"] = json!(format!("{}{path}", fake.url));
    }
    entry
}

/// Starts a host whose single provider entry is served by `fake`: the entry of
/// [`entry_in_front_of`] with `fields`, and the top-level config fields of `top`.
///
/// `key` is `(variable, value)`: the entry names the variable, and the host is given its
/// value directly ([`Server::start_with_keys`]), never through the process environment.
pub async fn start_host_in_front_of(
    scratch: &Scratch,
    fake: &FakeUpstream,
    (key_env, key): (&str, &str),
    fields: Value,
    top: Value,
) -> Server {
    let entry = entry_in_front_of(fake, key_env, fields);
    let config = with_fields(json!({ "providers": [entry] }), top);
    Server::start_with_keys(&scratch.config(config), &[(key_env, key)]).await
}

/// A fake upstream that answers with `replies`, in order, and a host in front of it
/// ([`start_host_in_front_of`] with the entry `fields` and no other config).
pub async fn scripted_host(
    key: (&str, &str),
    fields: Value,
    replies: impl IntoIterator<Item = Reply>,
) -> (Scratch, FakeUpstream, Server) {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script(replies);
    let server = start_host_in_front_of(&scratch, &fake, key, fields, json!({})).await;
    (scratch, fake, server)
}

/// What the client gets for `request` when the upstream answers every attempt with
/// `reply`: the status and the body, which must be JSON. It checks that the request did
/// reach the upstream. Each call has a fake and a host of its own ([`start_host_in_front_of`]
/// with `key`, `fields` and `top`): the host may retry, and counts failures.
pub async fn error_for(
    key: (&str, &str),
    fields: Value,
    top: Value,
    reply: Reply,
    request: &Value,
) -> (u16, Value) {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(reply);
    let server = start_host_in_front_of(&scratch, &fake, key, fields, top).await;
    let response = send_chat(&server, request).await;
    let status = response.status().as_u16();
    let body = json_body(response).await;
    assert!(
        !fake.received().is_empty(),
        "the request reached the upstream"
    );
    server.stop().await;
    (status, body)
}

/// The one request `fake` received.
pub fn only_request(fake: &FakeUpstream) -> Received {
    let mut received = fake.received();
    assert_eq!(received.len(), 1, "one upstream request: {received:?}");
    received.remove(0)
}

/// `(type, code)` of an OpenAI error body, checking on the way that it has a message.
pub fn error_type_and_code(body: &Value) -> (&str, &str) {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        error["type"].as_str().unwrap_or_default(),
        error["code"].as_str().unwrap_or_default(),
    )
}
