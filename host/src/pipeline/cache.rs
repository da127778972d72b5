//! The pipeline's side of the response cache: whether a call looks in the cache and
//! may be kept (the model's config and the request's directives), the hit answered
//! without an attempt, and the miss's answer kept once it is complete: a whole answer
//! at once, a stream only when it ended cleanly with its finish (a failed, cut or
//! abandoned stream is never kept).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use provider_sdk::{ChatResponse, StreamEvent, Usage};
use serde_json::Value;

use super::{
    attempts::Route,
    events::{Inner, RawInner},
    Call, Caller, Completion, EmbeddingCall, Pipeline,
};
use crate::{
    cache::{self, Answer, Entry, KeyParts, Outcome, ResponseCache},
    config::{CachePolicy, SemanticCache},
    registry::Target,
    snapshot::Snapshot,
};

/// What the cache does for one call.
pub(super) struct Plan {
    cache: Arc<ResponseCache>,
    key: String,
    policy: CachePolicy,
    read: bool,
    store: bool,
    now: f64,
    max_entry_bytes: u64,
    semantic: Option<Semantic>,
}

/// The semantic side of a plan: the prompt, its space, and once looked up its vector
/// (indexed when the answer is kept).
struct Semantic {
    config: SemanticCache,
    space: String,
    prompt: String,
    vector: Option<Vec<f32>>,
}

/// Members that hold the conversation itself: what the semantic cache compares by
/// meaning. The rest of a request (sampling, tools, format) must match exactly, so it
/// names the space the prompt is looked up in.
const CONVERSATION_MEMBERS: [&str; 4] = ["messages", "system", "instructions", "input"];

/// The plan for `call`, when its model is cached and the request allows it.
pub(super) fn plan(
    cache: &Arc<ResponseCache>,
    snapshot: &Snapshot,
    call: &Call,
    now: f64,
) -> Option<Plan> {
    let config = &snapshot.config;
    let directive = call.caller.cache;
    let alias = config
        .models
        .get(&call.request.model)
        .and_then(|a| a.cache.as_ref());
    let policy = config.cache.policy(alias, directive.opt_in)?;
    if !directive.may_read() && !directive.may_store() {
        return None;
    }
    let (protocol, mut question) = match &call.native {
        Some(native) => (
            native.protocol.as_str(),
            serde_json::from_slice::<Value>(&native.body).ok()?,
        ),
        None => ("canonical", serde_json::to_value(&call.request).ok()?),
    };
    // Headers a protocol forwards upstream (`anthropic-beta`, ...) change the answer.
    if let (Some(native), Value::Object(members)) = (&call.native, &mut question) {
        if !native.headers.is_empty() {
            members.insert(
                "\u{0}headers".to_owned(),
                serde_json::to_value(&native.headers).ok()?,
            );
        }
    }
    let partition = (!policy.shared).then_some(call.caller.client.as_str());
    let parts = KeyParts {
        protocol,
        model: &call.request.model,
        partition,
    };
    let key = cache::key(parts, &question);
    let semantic = policy.semantic.clone().map(|config| {
        if let Value::Object(members) = &mut question {
            members.retain(|name, _| !CONVERSATION_MEMBERS.contains(&name.as_str()));
        }
        Semantic {
            config,
            space: cache::key(parts, &question),
            prompt: prompt_text(&call.request),
            vector: None,
        }
    });
    Some(Plan {
        cache: cache.clone(),
        key,
        policy,
        read: directive.may_read(),
        store: directive.may_store(),
        now,
        max_entry_bytes: config.cache.max_entry_bytes,
        semantic,
    })
}

/// The conversation as the semantic cache embeds it: one `role: text` line per
/// message, lower-cased with runs of whitespace made one space, so that case and
/// spacing never separate two prompts.
pub(super) fn prompt_text(request: &provider_sdk::ChatRequest) -> String {
    let messages = serde_json::to_value(&request.messages).unwrap_or_default();
    let mut lines = Vec::new();
    for message in messages.as_array().into_iter().flatten() {
        let role = message["role"].as_str().unwrap_or("");
        let text = match &message["content"] {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
        lines.push(format!("{role}: {}", words.join(" ")));
    }
    lines.join("\n")
}

/// A hit's route: the target that gave the answer, no attempt made.
fn hit_route(entry: &Entry, outcome: Outcome) -> Route {
    Route {
        target: Target {
            provider: entry.provider.clone(),
            model: entry.model.clone(),
            larger_context: false,
        },
        fallback_index: 0,
        attempts: 0,
        upstream_wait: Default::default(),
        backoffs: Vec::new(),
        // A hit spends no rate limit: no limit bound it.
        rate_limits: Default::default(),
        cache: Some(outcome),
    }
}

/// What a lookup found for a call.
pub(super) enum Found {
    /// A whole answer (a stream's events assembled, or a whole answer).
    Whole(Box<Completion>, Option<f64>),
    /// A stream's events, replayed (with the upstream's own bytes when it had them).
    Stream(Route, Replay, Option<f64>),
}

/// A stream to replay.
pub(super) enum Replay {
    /// Canonical events.
    Events(Inner),
    /// The upstream's bytes with the events decoded from them.
    Native(RawInner),
}

impl Plan {
    /// The cached answer for a call that wants it `streamed` or whole: the exact
    /// match, else (for an alias with a semantic cache) the answer to the nearest
    /// prompt above the threshold; counted as a hit (the cost it saves) or a miss.
    pub(super) async fn lookup(
        &mut self,
        pipeline: &Arc<Pipeline>,
        snapshot: &Arc<Snapshot>,
        caller: &Caller,
        streamed: bool,
    ) -> Option<Found> {
        if !self.read {
            return None;
        }
        let mut found = self.found(&self.key, streamed, Outcome::Hit).await;
        if found.is_none() && self.semantic.is_some() {
            found = self
                .semantic_lookup(pipeline, snapshot, caller, streamed)
                .await;
        }
        match &found {
            Some(Found::Whole(done, saved)) => self
                .cache
                .hit(*saved, done.route.cache == Some(Outcome::SemanticHit)),
            Some(Found::Stream(route, _, saved)) => self
                .cache
                .hit(*saved, route.cache == Some(Outcome::SemanticHit)),
            None => self.cache.miss(),
        }
        found
    }

    /// Embeds the prompt and looks for the nearest kept one in its space.
    async fn semantic_lookup(
        &mut self,
        pipeline: &Arc<Pipeline>,
        snapshot: &Arc<Snapshot>,
        caller: &Caller,
        streamed: bool,
    ) -> Option<Found> {
        let semantic = self.semantic.as_mut()?;
        let request = provider_sdk::EmbeddingRequest::texts(
            semantic.config.embedding_model.clone(),
            vec![semantic.prompt.clone()],
        );
        let call = EmbeddingCall {
            request,
            caller: Caller {
                client: caller.client.clone(),
                request_id: caller.request_id.clone(),
                received: std::time::Instant::now(),
                cache: Default::default(),
            },
            native: None,
        };
        // The embedding is counted in usage like any call; its failure only costs the
        // semantic lookup.
        let vector = match pipeline.embed(snapshot.clone(), call).await {
            Ok(embedded) => embedded.response.embeddings.into_iter().next()?,
            Err(error) => {
                tracing::warn!(model = %semantic.config.embedding_model, %error, "semantic cache: the prompt could not be embedded; looked up as a miss");
                return None;
            }
        };
        let nearest = self.cache.semantic().nearest(&semantic.space, &vector);
        let threshold = semantic.config.threshold;
        semantic.vector = Some(vector);
        let (key, similarity) = nearest?;
        if similarity < threshold {
            return None;
        }
        tracing::debug!(similarity, threshold, "semantic cache hit");
        self.found(&key, streamed, Outcome::SemanticHit).await
    }

    /// The entry under `key`, as a whole answer or a stream, if it can serve.
    async fn found(&self, key: &str, streamed: bool, outcome: Outcome) -> Option<Found> {
        let entry = self.cache.get(key, self.now).await;
        entry.and_then(|entry| {
            let route = hit_route(&entry, outcome);
            match (streamed, entry.answer) {
                (false, Answer::Whole { response, native }) => Some(Found::Whole(
                    Box::new(completion(route, response, native)),
                    entry.cost_usd,
                )),
                (false, Answer::Stream { events, .. }) => {
                    let response = cache::assemble(&events, &entry.model);
                    Some(Found::Whole(
                        Box::new(completion(route, response, None)),
                        entry.cost_usd,
                    ))
                }
                // A whole answer has no event sequence to replay: the stream goes
                // upstream, and its events replace the entry.
                (true, Answer::Whole { .. }) => None,
                (true, Answer::Stream { events, native }) => {
                    let replay = match native {
                        Some(raw) => {
                            Replay::Native(Box::pin(stream::iter([Ok((Bytes::from(raw), events))])))
                        }
                        None => Replay::Events(Box::pin(stream::iter(events.into_iter().map(Ok)))),
                    };
                    Some(Found::Stream(route, replay, entry.cost_usd))
                }
            }
        })
    }

    /// Kept under the exact key: the prompt's vector joins the semantic index.
    async fn put(&self, entry: &Entry) {
        let kept = self.cache.put(&self.key, entry, self.policy.ttl).await;
        if let Some(Semantic {
            space,
            vector: Some(vector),
            ..
        }) = &self.semantic
        {
            if kept {
                self.cache
                    .semantic()
                    .insert(space, vector, self.key.clone());
            }
        }
    }

    /// Marks a route that went upstream as a cache miss.
    pub(super) fn missed(&self, route: &mut Route) {
        route.cache = Some(Outcome::Miss);
    }

    /// Keeps a whole answer.
    pub(super) async fn keep_whole(&self, snapshot: &Snapshot, done: &Completion) {
        if !self.store {
            return;
        }
        let native = match &done.native {
            Some(body) => match std::str::from_utf8(body) {
                Ok(text) => Some(text.to_owned()),
                Err(_) => return,
            },
            None => None,
        };
        let entry = self.entry(
            snapshot,
            &done.target,
            done.response.usage,
            Answer::Whole {
                response: done.response.clone(),
                native,
            },
        );
        self.put(&entry).await;
    }

    fn entry(
        &self,
        snapshot: &Snapshot,
        target: &Target,
        usage: Option<Usage>,
        answer: Answer,
    ) -> Entry {
        Entry {
            provider: target.provider.clone(),
            model: target.model.clone(),
            expires_at: self.now + self.policy.ttl as f64,
            usage,
            cost_usd: usage.and_then(|usage| cost(snapshot, target, &usage)),
            answer,
        }
    }

    /// The events of a stream, passed on as they come and kept when it ends cleanly.
    pub(super) fn keep_events(
        self,
        snapshot: Arc<Snapshot>,
        target: Target,
        inner: Inner,
    ) -> Inner {
        if !self.store {
            return inner;
        }
        let collected = Collected::new(self.max_entry_bytes);
        let keeper = Keeper {
            plan: self,
            snapshot,
            target,
        };
        Box::pin(stream::unfold(
            (inner, Some(collected), Some(keeper)),
            |(mut inner, mut collected, mut keeper)| async move {
                match inner.next().await {
                    Some(Ok(event)) => {
                        collected = collected.and_then(|c| c.push(&event));
                        Some((Ok(event), (inner, collected, keeper)))
                    }
                    Some(Err(error)) => Some((Err(error), (inner, None, None))),
                    None => {
                        if let (Some(collected), Some(keeper)) = (collected, keeper.take()) {
                            keeper.keep(collected).await;
                        }
                        None
                    }
                }
            },
        ))
    }

    /// The pieces of a passed-through stream, relayed as they come and kept (bytes and
    /// events) when it ends cleanly.
    /// Whether the answer is to be kept (its every event, for a stream).
    pub(super) fn stores(&self) -> bool {
        self.store
    }

    pub(super) fn keep_native(
        self,
        snapshot: Arc<Snapshot>,
        target: Target,
        inner: RawInner,
    ) -> RawInner {
        if !self.store {
            return inner;
        }
        let collected = Collected::new(self.max_entry_bytes);
        let keeper = Keeper {
            plan: self,
            snapshot,
            target,
        };
        Box::pin(stream::unfold(
            (inner, Some(collected), Some(keeper)),
            |(mut inner, mut collected, mut keeper)| async move {
                match inner.next().await {
                    Some(Ok((bytes, events))) => {
                        for event in &events {
                            collected = collected.and_then(|c| c.push(event));
                        }
                        collected = collected.and_then(|c| c.push_raw(&bytes));
                        Some((Ok((bytes, events)), (inner, collected, keeper)))
                    }
                    Some(Err(error)) => Some((Err(error), (inner, None, None))),
                    None => {
                        if let (Some(collected), Some(keeper)) = (collected, keeper.take()) {
                            keeper.keep(collected).await;
                        }
                        None
                    }
                }
            },
        ))
    }
}

fn completion(route: Route, response: ChatResponse, native: Option<String>) -> Completion {
    Completion {
        target: route.target.clone(),
        route,
        response,
        native: native.map(Bytes::from),
    }
}

/// What an upstream answer of `usage` cost at `target`'s prices, when they are known.
pub(super) fn cost(snapshot: &Snapshot, target: &Target, usage: &Usage) -> Option<f64> {
    let manifest = snapshot
        .registry
        .provider(&target.provider)
        .and_then(|s| s.manifest.as_deref());
    crate::usage::cost::prices(
        &snapshot.config.pricing,
        &target.provider,
        &target.model,
        manifest,
    )
    .map(|price| crate::usage::cost::cost(price, usage))
}

/// A stream's events (and bytes) so far, within the entry bound: past it nothing more
/// is collected and the stream is not kept.
struct Collected {
    events: Vec<StreamEvent>,
    raw: Vec<u8>,
    bytes: u64,
    max: u64,
    finished: bool,
    usage: Option<Usage>,
}

impl Collected {
    fn new(max: u64) -> Collected {
        Collected {
            events: Vec::new(),
            raw: Vec::new(),
            bytes: 0,
            max,
            finished: false,
            usage: None,
        }
    }

    /// Adds an event; `None` once the stream is too large to keep.
    fn push(mut self, event: &StreamEvent) -> Option<Collected> {
        // An event's size as stored is about its text plus a fixed framing.
        self.bytes += 48 + event_text_len(event) as u64;
        match event {
            StreamEvent::Finish { .. } => self.finished = true,
            StreamEvent::Usage { usage } => self.usage = Some(*usage),
            _ => {}
        }
        self.events.push(event.clone());
        (self.bytes <= self.max).then_some(self)
    }

    /// Adds the upstream's own bytes; `None` once the stream is too large to keep.
    fn push_raw(mut self, bytes: &[u8]) -> Option<Collected> {
        self.bytes += bytes.len() as u64;
        self.raw.extend_from_slice(bytes);
        (self.bytes <= self.max).then_some(self)
    }
}

fn event_text_len(event: &StreamEvent) -> usize {
    match event {
        StreamEvent::Start { id, model } => {
            id.as_ref().map_or(0, String::len) + model.as_ref().map_or(0, String::len)
        }
        StreamEvent::TextDelta { text } | StreamEvent::ReasoningDelta { text } => text.len(),
        StreamEvent::ReasoningDetail { detail } => {
            detail.text.as_ref().map_or(0, String::len)
                + detail.data.as_ref().map_or(0, String::len)
                + detail.signature.as_ref().map_or(0, String::len)
        }
        StreamEvent::ToolCallStart { id, name, .. } => id.len() + name.len(),
        StreamEvent::ToolCallDelta { arguments, .. } => arguments.len(),
        StreamEvent::Usage { .. } | StreamEvent::Finish { .. } => 0,
    }
}

/// Keeps a stream that ended cleanly.
struct Keeper {
    plan: Plan,
    snapshot: Arc<Snapshot>,
    target: Target,
}

impl Keeper {
    async fn keep(self, collected: Collected) {
        // A stream that ended without its finish was cut short: never kept.
        if !collected.finished {
            return;
        }
        let native = match collected.raw.is_empty() {
            true => None,
            false => match String::from_utf8(collected.raw) {
                Ok(text) => Some(text),
                Err(_) => return,
            },
        };
        let entry = self.plan.entry(
            &self.snapshot,
            &self.target,
            collected.usage,
            Answer::Stream {
                events: collected.events,
                native,
            },
        );
        self.plan.put(&entry).await;
    }
}
