//! `/console` in a real browser (headless Chromium, `e2e::browser`): after a scripted run
//! of requests (successes, failures, a fallback) and a hot reload that refuses a hostile
//! plugin, the page an operator opens shows the providers, the refused reload with its
//! reason, charts with data, and the same cost as `/admin/usage`; without the admin key
//! it is refused with a challenge a browser answers by asking for it. Screenshots are
//! left in `target/console-screenshots/`.

use e2e::{host_binary, mock_plugin, sandboxed_host, Harm, Scratch, Server};
use serde_json::{json, Value};

const ADMIN: &str = "sk-admin-console";
const CLIENT: &str = "sk-team-a";

/// Two providers from the mock plugin (`spare` from a copy that the test replaces), an
/// alias that falls back from one to the other, a budget, and a ledger in `scratch`.
fn config(scratch: &Scratch) -> std::path::PathBuf {
    let spare = scratch.write("plugins/libspare.so", std::fs::read(mock_plugin()).unwrap());
    scratch.config(json!({
        "providers": [
            {"name": "mock", "library": mock_plugin()},
            {"name": "spare", "library": spare},
        ],
        "models": {"resilient": {"targets": ["spare/fail", "mock/echo"]}},
        "auth": {"keys": [{"key": CLIENT, "name": "team-a"}], "admin_keys": [ADMIN]},
        "budgets": [{"client": "team-a", "limit_usd": 1.0, "period": "day"}],
        "retry": {"max_retries": 0},
        "usage": {"database": scratch.path("usage.db")},
        "sandbox": {"binary": host_binary(), "timeout_secs": 5.0},
    }))
}

async fn chat(server: &Server, model: &str, content: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .bearer_auth(CLIENT)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": content}]}))
        .send()
        .await
        .expect("the host answers")
}

async fn admin(server: &Server, method: reqwest::Method, path: &str) -> Value {
    let response = reqwest::Client::new()
        .request(method, server.at(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("the host answers");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("JSON")
}

/// The scripted run: 4 answers, 2 rate-limited failures, 1 answer by fallback, then a
/// reload that finds `spare`'s file replaced by a plugin that segfaults.
async fn scripted_run(server: &Server, scratch: &Scratch) -> Value {
    for i in 0..4 {
        assert_eq!(
            chat(server, "mock/echo", &format!("hello console {i}"))
                .await
                .status(),
            200
        );
    }
    for _ in 0..2 {
        assert_eq!(
            chat(server, "mock/fail", "rate_limited").await.status(),
            429
        );
    }
    let fallback = chat(server, "resilient", "provider_service").await;
    assert_eq!(fallback.status(), 200);
    assert_eq!(fallback.headers()["x-fallback-index"], "1");
    std::fs::copy(Harm::Segfault.always(), scratch.path("plugins/libspare.so")).unwrap();
    let reload = admin(server, reqwest::Method::POST, "/admin/reload").await;
    assert_eq!(reload["failed"][0][0], "spare", "{reload}");
    reload
}

fn text(cells: &Value) -> String {
    cells
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_providers_reloads_traffic_and_cost_in_a_real_browser() {
    let scratch = Scratch::new();
    let server = Server::serve(sandboxed_host(&config(&scratch)), false).await;
    scripted_run(&server, &scratch).await;
    let usage = admin(&server, reqwest::Method::GET, "/admin/usage").await;
    let shots = e2e::browser::artifacts("operator");
    let seen = e2e::browser::run(
        "console_check.js",
        vec![
            server.url.clone(),
            ADMIN.to_owned(),
            shots.display().to_string(),
        ],
    )
    .await;

    // Refused without the key, and with a wrong one, with a challenge a browser answers.
    let challenge = json!(r#"Basic realm="provider-host console", charset="UTF-8""#);
    for refused in ["without_key", "wrong_key"] {
        let answers = seen[refused]["answers"].as_array().unwrap();
        assert!(!answers.is_empty(), "{refused}: {}", seen[refused]);
        for answer in answers {
            assert_eq!(answer["status"], 401, "{refused}: {}", seen[refused]);
            assert_eq!(answer["challenge"], challenge, "{refused}");
        }
        assert_ne!(
            seen[refused]["shown"], 200,
            "{refused}: the page is not shown"
        );
    }
    assert_eq!(seen["status"], 200);
    assert!(seen["policy"]
        .as_str()
        .unwrap()
        .contains("default-src 'none'"));
    let page = &seen["first"];
    assert_eq!(
        page["notes"],
        json!([]),
        "no section failed to load: {page}"
    );
    assert_eq!(seen["errors"], json!([]), "no script error");

    // Nothing is fetched from another origin.
    let requested = seen["requested"].as_array().unwrap();
    assert!(requested.len() > 5, "{requested:?}");
    for url in requested {
        assert!(
            url.as_str()
                .unwrap()
                .starts_with(&format!("{}/", server.url)),
            "{url}"
        );
    }

    // Providers: both, `spare` still serving its previous version, the refusal named.
    let providers = page["providers"].as_array().unwrap();
    let row = |name: &str| text(&providers.iter().find(|p| p["name"] == name).unwrap()["cells"]);
    let mock = row("mock");
    assert!(
        mock.contains("✓ ready") && mock.contains("mock 1.") && mock.contains("in-process"),
        "{mock}"
    );
    let spare = row("spare");
    assert!(spare.contains("✓ ready"), "{spare}");
    assert!(
        spare.contains("last reload refused") && spare.contains("SIGSEGV"),
        "{spare}"
    );
    assert!(
        spare.contains("provider_service") && spare.contains(" on fail at "),
        "the failure the fallback recovered from: {spare}"
    );
    assert!(
        text(&page["aliases"][0]).contains("resilient | spare/fail → mock/echo"),
        "{}",
        page["aliases"]
    );

    // Reloads: the refused one first, with its reason; the first load last.
    let reloads = page["reloads"].as_array().unwrap();
    assert_eq!(reloads[0]["trigger"], "admin");
    assert_eq!(reloads[0]["failed"], 1);
    let refused = text(&reloads[0]["cells"]);
    assert!(
        refused.contains("✕ failed")
            && refused.contains("spare: ")
            && refused.contains("build_request: crashed in the validation sandbox with SIGSEGV"),
        "{refused}"
    );
    assert_eq!(reloads.last().unwrap()["trigger"], "start");
    assert!(text(&reloads.last().unwrap()["cells"]).contains("✓ ok"));

    // Charts with data, and their text.
    for chart in [
        "chart-requests",
        "chart-errors",
        "chart-latency",
        "chart-cost",
    ] {
        let c = &page["charts"][chart];
        assert!(c["canvas"].as_bool().unwrap(), "{chart} drawn");
        assert!(c["points"].as_u64().unwrap() >= 1, "{chart} has data: {c}");
    }
    assert_eq!(page["traffic_requests"], "7");
    assert!(
        page["charts"]["chart-errors"]["summary"]
            .as_str()
            .unwrap()
            .contains("rate_limited 2"),
        "{}",
        page["charts"]["chart-errors"]
    );

    // Cost: the page's figures are /admin/usage's, and the ledger's series agrees.
    let total = usage["totals"]["cost_usd"].as_f64().unwrap();
    assert!(total > 0.0);
    assert_eq!(
        page["cost_total"]["usd"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        total
    );
    assert_eq!(page["cost_total"]["text"], format!("${total:.6}"));
    for row in page["usage_providers"].as_array().unwrap() {
        let key = row["key"].as_str().unwrap();
        let expected = usage["providers"][key]["cost_usd"].as_f64().unwrap();
        assert_eq!(
            row["usd"].as_str().unwrap().parse::<f64>().unwrap(),
            expected,
            "{key}"
        );
        assert!(
            text(&row["cells"]).ends_with(&format!("${expected:.6}")),
            "{row}"
        );
    }
    let series_total: f64 = page["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["usd"].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(
        (series_total - total).abs() < 1e-12,
        "series {series_total} vs usage {total}"
    );

    // The budget, against what team-a spent.
    let budget = text(&page["budgets"][0]);
    assert!(budget.starts_with("client team-a | day since"), "{budget}");
    assert!(
        budget.contains(&format!(
            "${:.6}",
            usage["clients"]["team-a"]["cost_usd"].as_f64().unwrap()
        )),
        "{budget}"
    );
    assert!(budget.contains("✓ within"), "{budget}");
    assert!(
        !page["limits_shown"].as_bool().unwrap(),
        "no /admin/limits here: no limits section"
    );

    // Nothing moves between two refreshes, and a narrow window needs no sideways scroll.
    assert_eq!(page["layout"], seen["second"]["layout"]);
    assert!(
        seen["narrow"]["page_width"].as_u64().unwrap() <= 360,
        "{}",
        seen["narrow"]["page_width"]
    );

    // Limits, drawn from hand-written /admin/limits answers.
    let listed = &seen["limits_listed"];
    assert!(listed["limits_shown"].as_bool().unwrap());
    let limit = text(&listed["limits"][0]);
    assert!(
        limit.contains("client | team-a | 60 s | 3 of 60 (57 left, resets in 42 s)"),
        "{limit}"
    );
    assert!(limit.ends_with("1 of 4 in flight"), "{limit}");
    assert!(!seen["limits_empty"]["limits_shown"].as_bool().unwrap());

    let png = std::fs::read(shots.join("console.png")).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_console_and_admin_json_take_the_admin_key_as_a_basic_password() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch)).await;
    let get = |path: &str, user: &str, password: Option<&str>| {
        let request = reqwest::Client::new().get(server.at(path));
        match password {
            Some(p) => request.basic_auth(user, Some(p)),
            None => request,
        }
        .send()
    };
    let page = get("/console", "operator", Some(ADMIN)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let uplot = get("/console/uPlot.iife.min.js", "", Some(ADMIN))
        .await
        .unwrap();
    assert_eq!(uplot.status(), 200);
    assert!(uplot.text().await.unwrap().contains("uPlot"));
    assert_eq!(
        get("/console/nothing.js", "", Some(ADMIN))
            .await
            .unwrap()
            .status(),
        404
    );
    // A client key is not an admin key: the page asks again, the JSON refuses.
    assert_eq!(
        get("/console", "x", Some(CLIENT)).await.unwrap().status(),
        401
    );
    assert_eq!(
        get("/admin/providers", "x", Some(CLIENT))
            .await
            .unwrap()
            .status(),
        403
    );
    let without = get("/admin/reloads", "", None).await.unwrap();
    assert_eq!(without.status(), 401);
    assert!(without.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic "));
    let reloads: Value = get("/admin/reloads", "", Some(ADMIN))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reloads["reloads"][0]["trigger"], "start");
    assert_eq!(reloads["reloads"][0]["added"], json!(["mock", "spare"]));
    server.stop().await;
}
