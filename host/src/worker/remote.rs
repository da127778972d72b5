//! The plugin calls, made over a worker pool: each encodes its arguments into one
//! frame and decodes the answer into the same host-owned values an in-process call
//! returns.

use std::sync::Arc;

use provider_sdk::{
    ChatResponse, EmbeddingResponse, NativeQuery, NativeRequest, Outbound, Protocol, ProviderError,
    StreamEvent,
};
use serde::de::DeserializeOwned;

use super::{
    frame::{self, Kind, Reader, Writer, FEED_FINISH, FEED_OPEN},
    pool::{Pinned, Pool, Reply, Shared},
};

impl Pool {
    /// `build_request`, the request given as JSON.
    pub async fn build_request(&self, json: &str) -> Result<Outbound, ProviderError> {
        let reply = self
            .call(Kind::BuildRequest, json.as_bytes(), "build_request")
            .await?;
        outbound(ok(reply)?)
    }

    /// `build_embedding_request`, the request given as JSON.
    pub async fn build_embedding_request(&self, json: &str) -> Result<Outbound, ProviderError> {
        let what = "build_embedding_request";
        let reply = self
            .call(Kind::BuildEmbeddingRequest, json.as_bytes(), what)
            .await?;
        outbound(ok(reply)?)
    }

    /// `parse_response` of an upstream answer.
    pub async fn parse_response(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<ChatResponse, ProviderError> {
        let payload = response(status, headers, body);
        let reply = self
            .call(Kind::ParseResponse, &payload, "parse_response")
            .await?;
        json(&ok(reply)?, "response")
    }

    /// `parse_embedding_response` of an upstream answer.
    pub async fn parse_embedding_response(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<EmbeddingResponse, ProviderError> {
        let payload = response(status, headers, body);
        let what = "parse_embedding_response";
        let reply = self
            .call(Kind::ParseEmbeddingResponse, &payload, what)
            .await?;
        json(&ok(reply)?, "embeddings answer")
    }

    /// `classify_error` of an upstream answer; a failed call is its own error.
    pub async fn classify_error(
        &self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> ProviderError {
        let payload = response(status, headers, body);
        let classified = async {
            let reply = self
                .call(Kind::ClassifyError, &payload, "classify_error")
                .await?;
            json::<ProviderError>(&ok(reply)?, "error classification")
        };
        classified.await.unwrap_or_else(|fault| fault)
    }

    /// `native_request`.
    pub async fn native_request(
        &self,
        protocol: Protocol,
        model: &str,
        stream: bool,
    ) -> Result<Option<NativeRequest>, ProviderError> {
        let query = NativeQuery {
            protocol,
            model: model.to_owned(),
            stream,
        };
        let payload = serde_json::to_vec(&query)
            .map_err(|e| ProviderError::plugin_fault(format!("unencodable native query: {e}")))?;
        let reply = self
            .call(Kind::NativeRequest, &payload, "native_request")
            .await?;
        json(&ok(reply)?, "native request")
    }

    /// `health_request`.
    pub async fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        let reply = ok(self
            .call(Kind::HealthRequest, &[], "health_request")
            .await?)?;
        let mut input = Reader(&reply);
        match input.u8().map_err(malformed)? {
            0 => Ok(None),
            _ => frame::get_outbound(&mut input).map(Some).map_err(malformed),
        }
    }

    /// A stream decoder; it is created in a worker at its first call, and every call
    /// of it goes to that worker (a decoder keeps state between calls).
    pub fn stream_decoder(&self) -> RemoteDecoder {
        RemoteDecoder {
            shared: self.shared(),
            pinned: None,
            id: 0,
        }
    }
}

/// A stream decoder living in a worker process.
pub struct RemoteDecoder {
    shared: Arc<Shared>,
    pinned: Option<Pinned>,
    id: u64,
}

impl std::fmt::Debug for RemoteDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDecoder")
            .field("id", &self.id)
            .finish()
    }
}

impl RemoteDecoder {
    /// Feeds `bytes` (or, for `None`, finishes the decoder); its events are appended
    /// to `events`, those decoded before a failure too. `Ok(true)` when the decoder saw
    /// its stream's terminator (and was then finished).
    pub async fn decode(
        &mut self,
        bytes: Option<&[u8]>,
        events: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        let mut flags = 0;
        if self.pinned.is_none() {
            let pinned = Pinned::new(&self.shared).await?;
            self.id = pinned.next_id();
            self.pinned = Some(pinned);
            flags |= FEED_OPEN;
        }
        if bytes.is_none() {
            flags |= FEED_FINISH;
        }
        let mut payload = Writer(Vec::with_capacity(9 + bytes.map_or(0, <[u8]>::len)));
        payload.u64(self.id).u8(flags);
        payload.0.extend_from_slice(bytes.unwrap_or_default());
        let pinned = self.pinned.as_ref().expect("pinned above");
        match pinned
            .call(Kind::Feed, &payload.0, "the stream decoder")
            .await?
        {
            Reply::Ok(answer) => {
                let (complete, more) = answer.split_first().ok_or_else(|| malformed("empty"))?;
                if more != b"[]" {
                    events.extend(json::<Vec<StreamEvent>>(more, "stream events")?);
                }
                Ok(*complete == 1)
            }
            Reply::Err(answer) => {
                #[derive(serde::Deserialize)]
                struct Failure {
                    error: ProviderError,
                    #[serde(default)]
                    events: Vec<StreamEvent>,
                }
                let failure: Failure = json(&answer, "decoder error")?;
                events.extend(failure.events);
                Err(failure.error)
            }
        }
    }
}

impl Drop for RemoteDecoder {
    fn drop(&mut self) {
        if let Some(pinned) = &self.pinned {
            pinned.post(Kind::DropDecoder, &self.id.to_le_bytes());
        }
    }
}

/// An upstream answer as a payload.
fn response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(64 + body.len()));
    frame::put_response(&mut out, status, headers, body);
    out.0
}

/// The payload of a successful call, or the plugin's error.
fn ok(reply: Reply) -> Result<Vec<u8>, ProviderError> {
    match reply {
        Reply::Ok(payload) => Ok(payload),
        Reply::Err(payload) => Err(json::<ProviderError>(&payload, "error")?),
    }
}

fn outbound(payload: Vec<u8>) -> Result<Outbound, ProviderError> {
    frame::get_outbound(&mut Reader(&payload)).map_err(malformed)
}

fn json<T: DeserializeOwned>(payload: &[u8], what: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(payload).map_err(|e| {
        ProviderError::plugin_fault(format!(
            "the plugin's worker returned a malformed {what}: {e}"
        ))
    })
}

fn malformed(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::plugin_fault(format!(
        "the plugin's worker returned a malformed answer: {e}"
    ))
}
