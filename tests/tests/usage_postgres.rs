//! The usage ledger in PostgreSQL (`usage.postgres`), against a real server: the one
//! `.ci/start-postgres` runs (Debian's `postgresql`, 127.0.0.1:${PG_PORT:-55432}, trust
//! authentication). When nothing answers on that port, the first test to need it runs
//! the script, which installs the package if it is missing (a minute or so the first
//! time on a machine; a running server makes it instant). Every test makes a database of
//! its own and drops it at the end.
//!
//! Figures are computed by hand from the mock provider: tokens are words, and its prices
//! are $1 in and $2 out per million tokens.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, OnceLock,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use e2e::{host_binary, mock_plugin, Scratch, Server};
use provider_host::{config::UsageConfig, usage::Ledger};
use serde_json::{json, Value};

/// A password that must never reach a log line or an error message.
const SECRET: &str = "Sw0rdf1sh-not-for-logs";

fn port() -> u16 {
    std::env::var("PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(55432)
}

/// The server's URL (its `postgres` database), started by `.ci/start-postgres` when
/// nothing answers yet.
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let address = SocketAddr::from(([127, 0, 0, 1], port()));
        if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
            return format!("postgres://postgres@{address}/postgres");
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        eprintln!("usage_postgres: nothing on {address}; running .ci/start-postgres");
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(root.join(".ci/start-postgres"))
            .current_dir(&root)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run bash");
        assert!(
            output.status.success(),
            ".ci/start-postgres failed ({}); its output is above",
            output.status
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let url = stdout.lines().last().unwrap_or_default().trim().to_owned();
        assert!(
            url.starts_with("postgres://"),
            ".ci/start-postgres printed `{stdout}`, not a URL"
        );
        eprintln!("usage_postgres: server ready in {:.1?}", started.elapsed());
        url
    })
}

/// Runs `f` on a plain thread: the synchronous client cannot block inside the test's
/// async runtime.
fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("database thread")
}

fn connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A database of its own for one test, dropped at the end.
struct Database {
    name: String,
    url: String,
}

impl Database {
    fn new() -> Database {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "usage_{}_{}_{nanos}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = server_url().to_owned();
        let create = format!("CREATE DATABASE {name}");
        blocking(move || {
            connect(&admin)
                .batch_execute(&create)
                .expect("create database")
        });
        let (base, _) = server_url()
            .rsplit_once('/')
            .expect("a URL with a database");
        Database {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Runs `f` with a connection to this database.
    fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
    ) -> T {
        let url = self.url.clone();
        blocking(move || f(&mut connect(&url)))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, drop) = (
            server_url().to_owned(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = client.batch_execute(&drop);
            }
        })
        .join();
    }
}

/// A config serving the mock provider, with the ledger at `postgres`.
fn config(scratch: &Scratch, postgres: &str, extra: Value) -> PathBuf {
    let mut config = json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "usage": {"postgres": postgres},
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    scratch.config(config)
}

/// What the host charges for an echo of `words` words: `words` tokens in at $1 and as
/// many out at $2 per million (the same operations as the host's, so the same f64).
fn echo_cost(words: u64) -> f64 {
    (words as f64 * 1.0 + 0.0 * 0.5 + words as f64 * 2.0) / 1_000_000.0
}

/// `x` as the host's JSON shows it, read back the way the test reads the host's JSON
/// (serde_json may read a long decimal one bit off): equal to a figure from the host
/// exactly when the two f64 are the same.
fn as_json(x: f64) -> Value {
    serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap()
}

async fn chat(server: &Server, key: Option<&str>, model: &str, content: &str) -> u16 {
    let mut request = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": content}]}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    response.text().await.unwrap();
    status
}

async fn usage(server: &Server, key: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(server.at("/admin/usage"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// Starts two hosts at once (on two threads, so that both create the tables together).
async fn start_both(a: &Path, b: &Path) -> (Server, Server) {
    let (a, b) = (a.to_owned(), b.to_owned());
    let (a, b) = tokio::join!(
        tokio::spawn(async move { Server::start(&a).await }),
        tokio::spawn(async move { Server::start(&b).await }),
    );
    (a.unwrap(), b.unwrap())
}

#[tokio::test]
async fn tokens_and_costs_are_as_computed_by_hand_stored_exactly_and_survive_a_restart() {
    let (db, scratch) = (Database::new(), Scratch::new());
    let config = config(&scratch, &db.url, json!({}));
    let server = Server::start(&config).await;
    for words in ["one", "one two", "one two three"] {
        assert_eq!(chat(&server, None, "mock/echo", words).await, 200);
    }
    assert_eq!(
        chat(&server, None, "mock/fail", "invalid_request").await,
        400
    );
    let before = usage(&server, None).await;
    server.stop().await;

    let echo = &before["models"]["mock/echo"];
    assert_eq!(echo["calls"], 3);
    assert_eq!(echo["prompt_tokens"], 6);
    assert_eq!(echo["completion_tokens"], 6);
    let cost = 0.0 + echo_cost(1) + echo_cost(2) + echo_cost(3);
    assert_eq!(echo["cost_usd"], as_json(cost), "$18e-6, to the bit");
    assert_eq!(before["totals"]["calls"], 4);
    assert_eq!(before["totals"]["errors_by_kind"]["invalid_request"], 1);

    // One row per request, numbers as the host computed them, NULL where nothing was known.
    let rows = db.with(|c| {
        c.query(
            "SELECT prompt_tokens, completion_tokens, cost_usd, status, error_kind, stream FROM usage_records ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<_, Option<i64>>(0),
                r.get::<_, Option<i64>>(1),
                r.get::<_, Option<f64>>(2),
                r.get::<_, i64>(3),
                r.get::<_, Option<String>>(4),
                r.get::<_, bool>(5),
            )
        })
        .collect::<Vec<_>>()
    });
    assert_eq!(
        rows,
        vec![
            (Some(1), Some(1), Some(echo_cost(1)), 200, None, false),
            (Some(2), Some(2), Some(echo_cost(2)), 200, None, false),
            (Some(3), Some(3), Some(echo_cost(3)), 200, None, false),
            (None, None, None, 400, Some("invalid_request".into()), false),
        ]
    );
    let types = db.with(|c| {
        c.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'usage_records'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<std::collections::BTreeMap<_, _>>()
    });
    for (column, expected) in [
        ("at", "double precision"),
        ("cost_usd", "double precision"),
        ("latency_ms", "double precision"),
        ("prompt_tokens", "bigint"),
        ("attempts", "bigint"),
        ("id", "bigint"),
    ] {
        assert_eq!(types[column], expected, "{column}: {types:?}");
    }

    let server = Server::start(&config).await;
    let after = usage(&server, None).await;
    server.stop().await;
    // The ledger's health is of the moment (`before` was read with records waiting).
    let figures = |mut summary: Value| {
        summary.as_object_mut().map(|s| s.remove("ledger"));
        summary
    };
    assert_eq!(
        figures(after),
        figures(before),
        "every figure restored, to the bit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_database_both_see_the_fleet_totals_after_a_restart() {
    let db = Database::new();
    let (east_dir, west_dir) = (Scratch::new(), Scratch::new());
    let keys = json!({"auth": {"keys": [{"key": "sk-east", "name": "east"}, {"key": "sk-west", "name": "west"}]}});
    let east_config = config(&east_dir, &db.url, keys.clone());
    let west_config = config(&west_dir, &db.url, keys);

    let (east, west) = start_both(&east_config, &west_config).await;
    for _ in 0..2 {
        assert_eq!(chat(&east, Some("sk-east"), "mock/echo", "a b").await, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            chat(&west, Some("sk-west"), "mock/echo", "a b c").await,
            200
        );
    }
    // While running, each host counts what it served (plus what the ledger held at start).
    assert_eq!(usage(&east, Some("sk-east")).await["totals"]["calls"], 2);
    assert_eq!(usage(&west, Some("sk-west")).await["totals"]["calls"], 3);
    east.stop().await;
    west.stop().await;

    let (east, west) = start_both(&east_config, &west_config).await;
    let east_after = usage(&east, Some("sk-east")).await;
    let west_after = usage(&west, Some("sk-west")).await;
    east.stop().await;
    west.stop().await;
    for after in [&east_after, &west_after] {
        let totals = &after["totals"];
        assert_eq!(totals["calls"], 5, "{after}");
        assert_eq!(totals["prompt_tokens"], 2 * 2 + 3 * 3);
        assert_eq!(totals["completion_tokens"], 2 * 2 + 3 * 3);
        let cost = 2.0 * echo_cost(2) + 3.0 * echo_cost(3);
        assert!(
            (totals["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-15,
            "{totals}"
        );
        assert_eq!(after["clients"]["east"]["calls"], 2);
        assert_eq!(after["clients"]["west"]["calls"], 3);
    }
    assert_eq!(
        east_after, west_after,
        "both hosts read the same ledger: the same figures, the same `since`"
    );
}

#[tokio::test]
async fn a_reset_survives_a_restart_and_holds_for_every_host() {
    let db = Database::new();
    let (scratch, other) = (Scratch::new(), Scratch::new());
    let config_a = config(&scratch, &db.url, json!({}));
    let server = Server::start(&config_a).await;
    for words in ["one", "one two"] {
        assert_eq!(chat(&server, None, "mock/echo", words).await, 200);
    }
    let reset: Value = reqwest::Client::new()
        .post(server.at("/admin/usage/reset"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["totals"]["calls"], 0);
    assert_eq!(chat(&server, None, "mock/echo", "x y").await, 200);
    server.stop().await;

    let server = Server::start(&config_a).await;
    let after = usage(&server, None).await;
    server.stop().await;
    assert_eq!(after["totals"]["calls"], 1, "only the call after the reset");
    assert_eq!(after["totals"]["prompt_tokens"], 2);
    assert_eq!(after["totals"]["cost_usd"], as_json(0.0 + echo_cost(2)));
    assert_eq!(
        after["since"], reset["since"],
        "the reset's time, to the bit"
    );

    // A host that was not there for the reset starts from it too.
    let server = Server::start(&config(&other, &db.url, json!({}))).await;
    let newcomer = usage(&server, None).await;
    server.stop().await;
    assert_eq!(newcomer, after);

    let (reset_at, records) = db.with(|c| {
        let reset_at: f64 = c
            .query_one("SELECT value FROM usage_meta WHERE key = 'reset_at'", &[])
            .unwrap()
            .get(0);
        let records: i64 = c
            .query_one("SELECT count(*) FROM usage_records", &[])
            .unwrap()
            .get(0);
        (reset_at, records)
    });
    assert_eq!(as_json(reset_at), reset["since"]);
    assert_eq!(records, 3, "a reset keeps the records");
}

#[tokio::test]
async fn the_writer_reconnects_when_the_server_closes_its_connection() {
    let (db, scratch) = (Database::new(), Scratch::new());
    let config = config(&scratch, &db.url, json!({}));
    let server = Server::start(&config).await;
    assert_eq!(chat(&server, None, "mock/echo", "one").await, 200);
    let host = server.host.clone();
    tokio::task::spawn_blocking(move || host.usage().flush())
        .await
        .unwrap();
    let name = db.name.clone();
    let terminated = db.with(move |c| {
        c.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'provider-host'",
            &[&name],
        )
        .unwrap()
        .len()
    });
    assert_eq!(terminated, 1, "the host holds one connection");
    // pg_terminate_backend only signals the backend: wait until it is gone.
    let started = Instant::now();
    loop {
        let name = db.name.clone();
        let left = db.with(move |c| {
            c.query(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'provider-host'",
                &[&name],
            )
            .unwrap()
            .len()
        });
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the backend outlived its termination"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for words in ["one two", "one two three"] {
        assert_eq!(chat(&server, None, "mock/echo", words).await, 200);
    }
    server.stop().await;

    let server = Server::start(&config).await;
    let after = usage(&server, None).await;
    server.stop().await;
    assert_eq!(
        after["totals"]["calls"], 3,
        "no record lost to the closed connection: {after}"
    );
}

/// The unreachable ledger: nothing listens on port 1.
const UNREACHABLE: &str = "postgres://ledger:${E2E_PG_LEDGER_PASSWORD}@127.0.0.1:1/usage";
const UNREACHABLE_SHOWN: &str = "postgres://ledger:***@127.0.0.1:1/usage";

#[tokio::test]
async fn a_bad_url_falls_back_to_memory_and_its_errors_never_show_the_password() {
    let scratch = Scratch::new();
    let config = config(&scratch, UNREACHABLE, json!({}));
    // The password reaches the config's `${E2E_PG_LEDGER_PASSWORD}` directly, not
    // through the process environment that other tests share.
    let variables = [("E2E_PG_LEDGER_PASSWORD", SECRET)];
    let server = Server::start_with_keys(&config, &variables).await;
    assert_eq!(chat(&server, None, "mock/echo", "one two").await, 200);
    let summary = usage(&server, None).await;
    server.stop().await;
    assert_eq!(
        summary["totals"]["calls"], 1,
        "counted in memory: {summary}"
    );
    assert_eq!(summary["totals"]["prompt_tokens"], 2);
    let server = Server::start_with_keys(&config, &variables).await;
    assert_eq!(
        usage(&server, None).await["totals"]["calls"],
        0,
        "memory only: nothing was kept"
    );
    server.stop().await;
    assert!(
        !scratch.path(".provider-host/usage.sqlite3").exists(),
        "no SQLite file instead"
    );

    // The errors themselves, for URLs of every shape: refused, rejected by the server,
    // not parsed.
    let port = port();
    server_url(); // the server is up: the second URL is refused by it, not unreachable
    for (url, shown) in [
        (
            format!("postgres://ledger:{SECRET}@127.0.0.1:1/usage"),
            UNREACHABLE_SHOWN.to_owned(),
        ),
        (
            format!("postgres://postgres@127.0.0.1:{port}/no_such_database?password={SECRET}"),
            format!("postgres://postgres@127.0.0.1:{port}/no_such_database?password=***"),
        ),
        (
            format!("host=127.0.0.1 port=1 user=ledger password={SECRET} dbname=usage"),
            "host=127.0.0.1 port=1 user=ledger password=*** dbname=usage".to_owned(),
        ),
        (
            format!("postgres://ledger:{SECRET}@127.0.0.1:no-port/usage"),
            "postgres://ledger:***@127.0.0.1:no-port/usage".to_owned(),
        ),
    ] {
        let usage = UsageConfig {
            postgres: Some(url.clone()),
            ..UsageConfig::default()
        };
        let error = Ledger::open(&usage)
            .err()
            .unwrap_or_else(|| panic!("{shown} opened"));
        assert!(error.starts_with(&format!("{shown}: ")), "{error}");
        assert!(!error.contains(SECRET), "the password leaked: {error}");
    }
}

#[test]
fn serve_logs_the_fallback_with_the_password_masked() {
    let scratch = Scratch::new();
    let config = config(&scratch, UNREACHABLE, json!({}));
    let mut child = Command::new(host_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("E2E_PG_LEDGER_PASSWORD", SECRET)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start provider-host serve");
    let (tx, rx) = mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines
        .iter()
        .any(|l: &String| l.contains("usage ledger unavailable"))
    {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    // Whatever else it says while it serves.
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    lines.extend(rx.try_iter());
    let log = lines.join("\n");
    let warning = lines
        .iter()
        .find(|l| l.contains("usage ledger unavailable"))
        .unwrap_or_else(|| panic!("no fallback warning in:\n{log}"));
    assert!(
        warning.contains(UNREACHABLE_SHOWN) && warning.contains("in memory"),
        "{warning}"
    );
    assert!(!log.contains(SECRET), "the password leaked:\n{log}");
}

#[tokio::test]
async fn a_response_stored_through_one_host_is_continued_and_deleted_through_another() {
    let db = Database::new();
    let (east_dir, west_dir) = (Scratch::new(), Scratch::new());
    let east_config = config(&east_dir, &db.url, json!({}));
    let west_config = config(&west_dir, &db.url, json!({}));
    let (east, west) = start_both(&east_config, &west_config).await;
    let client = reqwest::Client::new();
    let post =
        |server: &Server, body: Value| client.post(server.at("/v1/responses")).json(&body).send();
    let first: Value = post(&east, json!({"model": "mock/echo", "input": "one two"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let second: Value = post(
        &west,
        json!({"model": "mock/echo", "input": "three", "previous_response_id": id}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(second["status"], "completed", "{second}");
    // "one two", its answer "one two", and "three": west read east's conversation.
    assert_eq!(second["usage"]["input_tokens"], 5, "{second}");
    let deleted = client
        .delete(west.at(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let gone = client
        .get(east.at(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404, "deleted for the whole fleet");
    east.stop().await;
    west.stop().await;
}

#[tokio::test]
async fn postgres_series_buckets_are_as_computed_by_hand() {
    let database = Database::new();
    let scratch = Scratch::new();
    let server = Server::start(&config(
        &scratch,
        &database.url,
        json!({"auth": {"admin_keys": ["sk-admin"]}}),
    ))
    .await;
    e2e::series::check_hand_computed_buckets(&server, "sk-admin").await;
    server.stop().await;
}
