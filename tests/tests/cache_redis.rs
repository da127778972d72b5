//! The response cache shared by a fleet through a real `redis-server`: two hosts in front
//! of one fake OpenAI upstream, the second answered from what the first kept; each
//! entry with its TTL in Redis (`SET PX`); a purge from one host empties the fleet's
//! cache; a Redis that goes away is a miss, never an error.

use e2e::{
    canned::OPENAI_CHAT_COMPLETION,
    client,
    fake::{FakeUpstream, Reply},
    plugin,
    redis::RedisServer,
    Scratch, Server,
};
use provider_host::cache::{key, KeyParts};
use serde_json::json;

/// A host in front of `fake` whose alias `gpt` is cached for a minute in `redis`.
async fn host(scratch: &Scratch, fake: &FakeUpstream, redis: &RedisServer) -> Server {
    let entry = client::entry_in_front_of(
        fake,
        "",
        json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({
        "providers": [entry],
        "retry": {"max_retries": 0},
        "models": {"gpt": {"targets": ["openai/gpt-4.1"], "cache": {"ttl": 60, "shared": true}}},
        "shared_state": {"redis": redis.url(), "key_prefix": "fleet", "timeout_ms": 300}
    }));
    Server::start(&config).await
}

/// `(status, x-cache, body)` of a chat.
async fn chat(server: &Server, body: &str) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("the host answers");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, cache, response.text().await.unwrap())
}

const QUESTION: &str = r#"{"model":"gpt","messages":[{"role":"user","content":"Hello!"}]}"#;

#[tokio::test]
async fn two_hosts_share_one_cache_through_redis_with_the_entrys_ttl() {
    let redis = RedisServer::start();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let (scratch_a, scratch_b) = (Scratch::new(), Scratch::new());
    let a = host(&scratch_a, &fake, &redis).await;
    let b = host(&scratch_b, &fake, &redis).await;

    let (status, cache, body) = chat(&a, QUESTION).await;
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    assert_eq!(body, OPENAI_CHAT_COMPLETION);
    let (status, cache, body) = chat(&b, QUESTION).await;
    assert_eq!(
        (status, cache.as_deref()),
        (200, Some("hit")),
        "the other host kept it"
    );
    assert_eq!(body, OPENAI_CHAT_COMPLETION);
    assert_eq!(fake.received().len(), 1, "one upstream call for the fleet");

    assert_eq!(a.host.cache().status().backend, "redis");
    assert_eq!(b.host.cache().status().hits, 1);
    assert_eq!(
        redis.command(&["DBSIZE"]).as_deref(),
        Some(":1"),
        "one entry in Redis"
    );
    // A purge from any host empties the fleet's cache.
    let purged: serde_json::Value = reqwest::Client::new()
        .delete(a.at("/admin/cache"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(purged["purged"], 1, "{purged}");
    assert_eq!(redis.command(&["DBSIZE"]).as_deref(), Some(":0"));
    let (_, cache, _) = chat(&b, QUESTION).await;
    assert_eq!(cache.as_deref(), Some("miss"), "purged for the whole fleet");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn an_entry_in_redis_carries_its_ttl_so_redis_drops_it_by_itself() {
    let redis = RedisServer::start();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let scratch = Scratch::new();
    let server = host(&scratch, &fake, &redis).await;
    chat(&server, QUESTION).await;
    // The key is the documented one: protocol, model as named, no partition (shared).
    let hash = key(
        KeyParts {
            protocol: "openai.chat_completions",
            model: "gpt",
            partition: None,
        },
        &serde_json::from_str(QUESTION).unwrap(),
    );
    let ttl = redis
        .command(&["PTTL", &format!("fleet:cache:{hash}")])
        .expect("PTTL answers");
    let ms: i64 = ttl.trim_start_matches(':').parse().unwrap();
    assert!(
        ms > 50_000 && ms <= 60_000,
        "the entry's TTL in Redis: {ttl}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_redis_that_goes_away_is_a_miss_never_an_error() {
    let mut redis = RedisServer::start();
    let fake = FakeUpstream::start().await;
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let scratch = Scratch::new();
    let server = host(&scratch, &fake, &redis).await;
    assert_eq!(chat(&server, QUESTION).await.1.as_deref(), Some("miss"));
    assert_eq!(chat(&server, QUESTION).await.1.as_deref(), Some("hit"));

    redis.stop();
    for _ in 0..3 {
        let (status, cache, body) = chat(&server, QUESTION).await;
        assert_eq!((status, cache.as_deref()), (200, Some("miss")));
        assert_eq!(body, OPENAI_CHAT_COMPLETION, "answered upstream");
    }
    assert_eq!(fake.received().len(), 4);
    let status = server.host.cache().status();
    assert!(status.unavailable >= 3, "{status:?}");
    server.stop().await;
}
