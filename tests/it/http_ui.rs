//! The monitoring page at `/` in a real headless Chromium (Debian's `chromium` driven through
//! its `chromedriver`, see `webdriver.rs`; `scripts/browser.sh` installs both and
//! `scripts/test.sh` runs it; without them these tests fail loudly, they never skip).
//!
//! What a person looking at the page relies on: the overview lists the projects with the right
//! states, worst first; a running sync's progress moves; Full resync asks first; Retry moves a
//! dead job back to waiting; Sync now starts a job; Pause and Resume work; hostile project
//! names, error texts and raw JSON render as text; the read views are open only where
//! `ui_anonymous_read` allows, and the page asks for the token otherwise; 1,000 projects page
//! and filter quickly. Screenshots land in `target/browser-artifacts/`.

mod webdriver;

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::daemon::{DaemonOpts, Env, mock};
use retailcrm_sync::control::protocol::ProjectState;
use retailcrm_sync::mock::FaultConfig;
use serde_json::{Value, json};
use webdriver::Browser;

const TOKEN: &str = "ui-test-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

/// The overview's rows as the page shows them.
const ROWS_JS: &str = r#"
return [...document.querySelectorAll('#project-rows tr')].map((tr) => {
  const p = tr.querySelector('.progress');
  return {
    id: Number(tr.dataset.projectId),
    health: tr.dataset.health,
    state: tr.querySelector('td.state').dataset.state,
    fresh: tr.querySelector('td.fresh').dataset.fresh,
    name: tr.querySelector('a.project-link').textContent,
    done: p ? Number(p.dataset.done) : null,
    dead: tr.querySelector('td.dead').textContent,
  };
});"#;

async fn rows(b: &Browser) -> Vec<Value> {
    b.js(ROWS_JS, json!([]))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn row(rows: &[Value], id: i64) -> Option<&Value> {
    rows.iter().find(|r| r["id"] == id)
}

async fn text_of(b: &Browser, css: &str) -> String {
    b.js(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        json!([css]),
    )
    .await
    .as_str()
    .unwrap_or("")
    .to_string()
}

async fn dialog_open(b: &Browser, id: &str) -> bool {
    b.js(
        "const d = document.getElementById(arguments[0]); return !!(d && d.open);",
        json!([id]),
    )
    .await
        == json!(true)
}

async fn notices(b: &Browser) -> Vec<String> {
    b.js(
        "return [...document.querySelectorAll('#notices .notice span')].map((s) => s.textContent);",
        json!([]),
    )
    .await
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|v| v.as_str().map(str::to_string))
    .collect()
}

/// Waits for a notice containing `needle` and returns it.
async fn wait_notice(b: &Browser, needle: &str) -> String {
    b.wait_until(&format!("a notice with `{needle}`"), WAIT, async || {
        notices(b).await.into_iter().find(|n| n.contains(needle))
    })
    .await
}

async fn click(b: &Browser, css: &str) {
    b.click_css(css, WAIT).await;
}

/// Answers the token dialog (it must open) with `token`.
async fn give_token(b: &Browser, token: &str, reason_contains: &str) {
    b.wait_until("the token dialog", WAIT, async || {
        let open = dialog_open(b, "token-dialog").await;
        let reason = text_of(b, "#token-reason").await;
        (open && reason.contains(reason_contains)).then_some(())
    })
    .await;
    let input = b.wait_for("#token-input", WAIT).await;
    b.type_text(&input, token).await;
    click(b, "#token-ok").await;
}

/// A JSON API call with or without the token.
async fn api(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = http.request(method, format!("{base}/api/v1{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn jobs(http: &reqwest::Client, base: &str, project: i64) -> Vec<Value> {
    let (status, body) = api(
        http,
        base,
        reqwest::Method::GET,
        &format!("/projects/{project}/jobs?limit=100"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["jobs"].as_array().cloned().unwrap_or_default()
}

/// Makes the window phone-sized (390 x 844) and returns `[scrollWidth, innerWidth]` once the
/// page is laid out at the new width (the width checks mean nothing before that).
async fn phone_sized(b: &Browser) -> Value {
    let wide = b.js("return window.innerWidth;", json!([])).await;
    b.set_size(390, 844).await;
    b.wait_until("the page at the phone width", WAIT, async || {
        let v = b
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                json!([]),
            )
            .await;
        (v[1] != wide && v[1].as_i64()? <= 500).then_some(v)
    })
    .await
}

async fn page_errors(b: &Browser) -> Value {
    b.js("return window.__rcsErrors;", json!([])).await
}

/// The page end to end on a daemon with five shops in four states (and later two with
/// hostile names), read views open on loopback (`ui_anonymous_read`), actions with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_page_in_a_real_browser() {
    let started = Instant::now();
    let alpha = mock(80, 40, 91).await;
    let bolt = mock(4000, 50, 92).await;
    let cedar = mock(30, 10, 93).await;
    let dune = mock(30, 10, 94).await;
    dune.revoke_key();
    let env = Env::new(DaemonOpts {
        api_token: Some(format!("{TOKEN}\n")),
        ui_anonymous_read: true,
        ..DaemonOpts::default()
    })
    .await;
    env.insert_integration(1, &alpha, 600).await;
    env.insert_integration(2, &bolt, 600).await;
    env.insert_integration(3, &cedar, 600).await;
    env.insert_integration(4, &dune, 600).await;
    // An empty key: the project's client cannot be built, so the project is `failed`.
    env.insert_integration_raw(5, &alpha.url, "", 600).await;
    env.sql(
        "UPDATE projects SET name = CASE id WHEN 1 THEN 'Alpha Garden' WHEN 2 THEN 'Bolt Sport' \
         WHEN 3 THEN 'Cedar Home' WHEN 4 THEN 'Dune Kids' WHEN 5 THEN 'Elm Books' END \
         WHERE id <= 5",
    )
    .await;
    let daemon = env.start().await;
    daemon
        .wait_status("first syncs, a dead job, a failed project", WAIT, |s| {
            let p = |id: i64| s.projects.iter().find(|p| p.project_id == id);
            [1, 2, 3].iter().all(|id| {
                p(*id).is_some_and(|p| p.last_success_at.is_some() && p.running_job.is_none())
            }) && p(4).is_some_and(|p| p.dead_jobs == 1)
                && p(5).is_some_and(|p| p.state == ProjectState::Failed)
        })
        .await;
    let base = daemon.http().await;
    let http = reqwest::Client::new();
    let (status, body) = api(
        &http,
        &base,
        reqwest::Method::POST,
        "/projects/3/pause",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    env.sql(
        "INSERT INTO dead_records (project_id, stream, entity_id, raw, reason) VALUES \
         (1, 'orders', 9001, '{\"id\": 9001, \"number\": \"</pre><script>alert(3)</script>\", \
           \"customer\": {\"firstName\": \"<img src=x onerror=alert(4)>\"}}', \
          'status <b>weird</b> is not a string <script>alert(5)</script>'), \
         (1, 'customers', NULL, '{\"broken\": true}', 'no id')",
    )
    .await;

    // --- auth: what is open without the token, and to whom ------------------------------
    let host = base.trim_start_matches("http://").to_string();
    let (status, body) = api(&http, &base, reqwest::Method::GET, "/overview", None).await;
    assert_eq!(status, 200, "anonymous read on loopback: {body}");
    assert_eq!(body["data"]["access"], "anonymous");
    for path in [
        "/projects",
        "/projects/1",
        "/projects/1/jobs",
        "/projects/1/runs",
    ] {
        let (status, _) = api(&http, &base, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path} is a read view");
    }
    let (status, body) = api(&http, &base, reqwest::Method::GET, "/overview", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["access"], "token");
    let (status, _) = api(
        &http,
        &base,
        reqwest::Method::GET,
        "/overview",
        Some("a-wrong-token-of-some-length"),
    )
    .await;
    assert_eq!(
        status, 401,
        "a wrong token is refused even where reads are open"
    );
    for (name, value) in [
        ("host", "rebound.example.com"),
        (
            "host",
            &*format!("evil.example:{}", host.rsplit(':').next().unwrap()),
        ),
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=203.0.113.7"),
        ("origin", "https://evil.example"),
    ] {
        let r = http
            .get(format!("{base}/api/v1/overview"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}: {value} is not a local read");
    }
    for (method, path) in [
        (reqwest::Method::POST, "/projects/1/jobs"),
        (reqwest::Method::POST, "/projects/1/pause"),
        (reqwest::Method::POST, "/projects/4/jobs/x/retry"),
        (reqwest::Method::POST, "/reload"),
    ] {
        let (status, _) = api(&http, &base, method.clone(), path, None).await;
        assert_eq!(status, 401, "{method} {path} needs the token");
    }
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    // --- overview: states, worst first, filters -----------------------------------------
    let b = Browser::start("ui", 1280, 900).await;
    b.goto(&format!("{base}/?refresh=500")).await;
    let shown = b
        .wait_until("five projects with their states", WAIT, async || {
            let r = rows(&b).await;
            let ok = r.len() == 5
                && row(&r, 5).is_some_and(|p| p["state"] == "failed")
                && row(&r, 4).is_some_and(|p| p["health"] == "dead" && p["dead"] == "1")
                && row(&r, 3).is_some_and(|p| p["state"] == "paused");
            ok.then_some(r)
        })
        .await;
    assert_eq!(&ids(&shown)[..3], &[5, 4, 3], "worst first: {shown:?}");
    for id in [1, 2] {
        let p = row(&shown, id).unwrap();
        assert_eq!(p["state"], "idle", "{p}");
        assert_eq!(p["health"], "ok", "{p}");
        assert_eq!(p["fresh"], "ok", "{p}");
    }
    assert_eq!(row(&shown, 1).unwrap()["name"], "Alpha Garden");
    assert!(
        !dialog_open(&b, "token-dialog").await,
        "reads need no token here"
    );
    let access = text_of(&b, "#access").await;
    assert!(access.contains("read-only"), "{access}");
    click(&b, "button.chip[data-filter=problems]").await;
    b.wait_until("the problems filter", WAIT, async || {
        (ids(&rows(&b).await) == [5, 4]).then_some(())
    })
    .await;
    click(&b, "button.chip[data-filter=all]").await;
    b.wait_until("all projects again", WAIT, async || {
        (rows(&b).await.len() == 5).then_some(())
    })
    .await;

    // --- Bolt: Full resync asks first, needs the token, and its progress moves ---------------
    click(&b, "tr[data-project-id='2'] a.project-link").await;
    b.wait_until("Bolt's page", WAIT, async || {
        (text_of(&b, "#project-name").await == "Bolt Sport").then_some(())
    })
    .await;
    bolt.set_faults(FaultConfig {
        slow_ms: 400,
        ..FaultConfig::default()
    });
    click(&b, "#resync").await;
    b.wait_until("the confirmation", WAIT, async || {
        dialog_open(&b, "confirm-dialog").await.then_some(())
    })
    .await;
    let question = text_of(&b, "#confirm-text").await;
    assert!(
        question.contains("read the whole RetailCRM account"),
        "{question}"
    );
    click(&b, "#confirm-cancel").await;
    // Cancel closes the dialog in its click handler; a resync that went ahead anyway would
    // have asked for the token (none is given yet) in that same turn of the page's event
    // loop, so once the dialog is seen closed, the token dialog would be seen open.
    b.wait_until("the confirmation closed", WAIT, async || {
        (!dialog_open(&b, "confirm-dialog").await).then_some(())
    })
    .await;
    assert!(
        !dialog_open(&b, "token-dialog").await,
        "cancelled: nothing asked"
    );
    assert!(
        jobs(&http, &base, 2)
            .await
            .iter()
            .all(|j| j["kind"] != "resync_all"),
        "a cancelled resync enqueues nothing"
    );
    click(&b, "#resync").await;
    b.wait_until("the confirmation again", WAIT, async || {
        dialog_open(&b, "confirm-dialog").await.then_some(())
    })
    .await;
    click(&b, "#confirm-ok").await;
    give_token(&b, "a-wrong-token-of-some-length", "needs the API token").await;
    give_token(&b, TOKEN, "refused").await;
    let queued = wait_notice(&b, "Full resync queued: job ").await;
    let resync_job = queued.rsplit(' ').next().unwrap().to_string();
    assert!(
        jobs(&http, &base, 2)
            .await
            .iter()
            .any(|j| j["job_id"] == resync_job.as_str() && j["kind"] == "resync_all"),
        "the page's job {resync_job} is in the queue"
    );
    let mut seen = BTreeSet::new();
    b.wait_until("the progress bar to move three times", WAIT, async || {
        let done = b
            .js(
                "const p = document.querySelector('#running .progress'); return p ? Number(p.dataset.done) : null;",
                json!([]),
            )
            .await;
        if let Some(d) = done.as_u64() {
            seen.insert(d);
        }
        (seen.len() >= 3).then_some(())
    })
    .await;
    let project_shot = b.screenshot("project-running").await;

    // The overview shows the same run moving.
    click(&b, "#back").await;
    let mut seen_overview = BTreeSet::new();
    b.wait_until(
        "Bolt running with a moving bar on the overview",
        WAIT,
        async || {
            let r = rows(&b).await;
            let p = row(&r, 2)?;
            if p["state"] == "running"
                && let Some(d) = p["done"].as_u64()
            {
                seen_overview.insert(d);
            }
            (seen_overview.len() >= 2).then_some(())
        },
    )
    .await;
    let overview_shot = b.screenshot("overview").await;
    let narrow = phone_sized(&b).await;
    let (scroll_w, inner_w) = (narrow[0].as_i64().unwrap(), narrow[1].as_i64().unwrap());
    assert!(
        scroll_w <= inner_w + 1,
        "no sideways scrolling in a phone-sized window: {narrow}"
    );
    let narrow_shot = b.screenshot("overview-narrow").await;
    b.set_size(1280, 900).await;
    bolt.set_faults(FaultConfig::default());

    // --- Alpha: Sync now, runs with their chart, poison records folded ----------------------
    click(&b, "tr[data-project-id='1'] a.project-link").await;
    b.wait_until("Alpha's runs", WAIT, async || {
        let n = b
            .js(
                "return document.querySelectorAll('#run-rows tr[data-run-id]').length;",
                json!([]),
            )
            .await
            .as_u64()?;
        (n >= 1).then_some(())
    })
    .await;
    let runs_before = env
        .count("SELECT count(*) AS n FROM sync_runs WHERE project_id = 1")
        .await;
    click(&b, "#sync-now").await;
    assert!(
        !dialog_open(&b, "token-dialog").await,
        "the token is kept for the session"
    );
    let queued = wait_notice(&b, "Sync queued: job ").await;
    let sync_job = queued.rsplit(' ').next().unwrap().to_string();
    b.wait_until("the page's sync job to complete", WAIT, async || {
        jobs(&http, &base, 1)
            .await
            .iter()
            .any(|j| j["job_id"] == sync_job.as_str() && j["state"] == "completed")
            .then_some(())
    })
    .await;
    let want_runs = (runs_before + 1) as u64;
    b.wait_until("the new run in the table and the chart", WAIT, async || {
        let v = b
            .js(
                "return [document.querySelectorAll('#run-rows tr[data-run-id]').length, \
                 document.querySelectorAll('#runs-chart rect.bar').length];",
                json!([]),
            )
            .await;
        (v[0].as_u64() == Some(want_runs) && v[1].as_u64() == Some(want_runs)).then_some(())
    })
    .await;
    let first_run = b
        .js(
            "return [...document.querySelectorAll('#run-rows tr')].map((tr) => tr.textContent)[0];",
            json!([]),
        )
        .await;
    assert!(
        first_run.as_str().unwrap_or("").contains("succeeded"),
        "{first_run}"
    );
    let poison = b
        .wait_until("two poison records", WAIT, async || {
            let v = b
                .js(
                    "return [...document.querySelectorAll('#poison-rows tr[data-record-id]')]\
                     .map((tr) => tr.querySelector('td.reason').textContent);",
                    json!([]),
                )
                .await;
            (v.as_array().map(Vec::len) == Some(2)).then_some(v)
        })
        .await;
    assert!(
        poison
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "status <b>weird</b> is not a string <script>alert(5)</script>"),
        "the reason is shown as text: {poison}"
    );
    let folded = b
        .js(
            "return [...document.querySelectorAll('#poison-rows details')].map((d) => d.open);",
            json!([]),
        )
        .await;
    assert_eq!(folded, json!([false, false]), "raw JSON starts folded");
    let hostile = b
        .js(
            "return [...document.querySelectorAll('#poison-rows tr[data-record-id]')]\
             .find((tr) => tr.querySelector('td.reason').textContent.includes('weird'))\
             .dataset.recordId;",
            json!([]),
        )
        .await;
    b.click_css(
        &format!(
            "#poison-rows details[data-record-id='{}'] summary",
            hostile.as_str().unwrap()
        ),
        WAIT,
    )
    .await;
    let open_js = "return [...document.querySelectorAll('#poison-rows details')]\
                   .filter((d) => d.open).map((d) => d.dataset.recordId);";
    let want_open = json!([hostile]);
    b.wait_until("the raw JSON open", WAIT, async || {
        (b.js(open_js, json!([])).await == want_open).then_some(())
    })
    .await;
    // It stays open when the table is drawn again. The page draws it only when the records
    // change (an unchanged refresh draws nothing), so a new record arrives and is waited for.
    env.sql(
        "INSERT INTO dead_records (project_id, stream, entity_id, raw, reason) VALUES \
         (1, 'orders', 9002, '{\"id\": 9002}', 'a third one')",
    )
    .await;
    b.wait_until("the new poison record on the page", WAIT, async || {
        let n = b
            .js(
                "return document.querySelectorAll('#poison-rows tr[data-record-id]').length;",
                json!([]),
            )
            .await;
        (n == json!(3)).then_some(())
    })
    .await;
    assert_eq!(
        b.js(open_js, json!([])).await,
        want_open,
        "the opened raw JSON stays open when the table is drawn again"
    );
    let raw = b
        .js(
            "const d = [...document.querySelectorAll('#poison-rows details')].find((d) => d.open); \
             return d ? d.querySelector('pre').textContent : null;",
            json!([]),
        )
        .await;
    let raw = raw
        .as_str()
        .unwrap_or_else(|| panic!("no open raw JSON: {raw}"));
    assert!(
        raw.contains("</pre><script>alert(3)</script>")
            && raw.contains("<img src=x onerror=alert(4)>"),
        "raw JSON as text: {raw}"
    );
    let injected = b
        .js(
            "return document.querySelectorAll('#view img, #view script, main script').length;",
            json!([]),
        )
        .await;
    assert_eq!(injected, json!(0), "no element came out of the data");
    let alpha_shot = b.screenshot("project").await;
    let narrow = phone_sized(&b).await;
    assert!(
        narrow[0].as_i64().unwrap() <= narrow[1].as_i64().unwrap() + 1,
        "the project page fits a phone-sized window: {narrow}"
    );
    let alpha_narrow_shot = b.screenshot("project-narrow").await;
    b.set_size(1280, 900).await;

    // --- Dune: a dead job; Pause, Retry (back to waiting), Resume ---------------------------
    assert_eq!(
        page_errors(&b).await,
        json!([]),
        "no JavaScript error so far"
    );
    b.goto(&format!("{base}/?refresh=500#/projects/4")).await;
    b.wait_for("#dead-job-rows button.retry", WAIT).await;
    let dead_id = b
        .js(
            "return document.querySelector('#dead-job-rows button.retry').dataset.jobId;",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    let error = text_of(&b, "#dead-job-rows td.error").await;
    assert!(
        error.to_lowercase().contains("key"),
        "the dead job says why: {error}"
    );
    let dead_shot = b.screenshot("project-dead-job").await;
    // A new page load: the token is still in this tab's session.
    click(&b, "#pause-resume").await;
    wait_notice(&b, "Paused").await;
    b.wait_until("Dune paused", WAIT, async || {
        let st = daemon.project(4).await?;
        (st.state == ProjectState::Paused && text_of(&b, "#pause-resume").await == "Resume")
            .then_some(())
    })
    .await;
    click(&b, "#dead-job-rows button.retry").await;
    wait_notice(&b, "is waiting again").await;
    b.wait_until("the retried job waiting, on the page and in the queue", WAIT, async || {
        let on_page = b
            .js(
                "const tr = document.querySelector(`#queued-job-rows tr[data-job-id='${arguments[0]}']`); \
                 return tr ? tr.dataset.state : null;",
                json!([dead_id]),
            )
            .await;
        let queue = jobs(&http, &base, 4).await;
        let state = queue
            .iter()
            .find(|j| j["job_id"] == dead_id.as_str())
            .map(|j| j["state"].clone());
        (on_page == "waiting" && state == Some(json!("waiting"))).then_some(())
    })
    .await;
    let none_dead = text_of(&b, "#dead-job-rows").await;
    assert!(none_dead.contains("No dead jobs"), "{none_dead}");
    dune.restore_key();
    click(&b, "#pause-resume").await;
    wait_notice(&b, "Resumed").await;
    b.wait_until("the retried job done after Resume", WAIT, async || {
        let st = daemon.project(4).await?;
        let done = jobs(&http, &base, 4)
            .await
            .iter()
            .any(|j| j["job_id"] == dead_id.as_str() && j["state"] == "completed");
        (done && st.dead_jobs == 0 && text_of(&b, "#stat-dead").await == "0").then_some(())
    })
    .await;

    // --- hostile names: text, never markup ---------------------------------------------------
    env.insert_integration(6, &alpha, 600).await;
    env.insert_integration(7, &alpha, 600).await;
    env.sql(
        "UPDATE projects SET name = CASE id WHEN 6 THEN '<script>alert(1)</script>' \
         WHEN 7 THEN '<img src=x onerror=alert(2)>' END WHERE id IN (6, 7)",
    )
    .await;
    let (status, body) = api(&http, &base, reqwest::Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        page_errors(&b).await,
        json!([]),
        "no JavaScript error on Dune's page"
    );
    b.goto(&format!("{base}/?refresh=500")).await;
    let shown = b
        .wait_until("seven projects", WAIT, async || {
            let r = rows(&b).await;
            (r.len() == 7).then_some(r)
        })
        .await;
    assert_eq!(row(&shown, 6).unwrap()["name"], "<script>alert(1)</script>");
    assert_eq!(
        row(&shown, 7).unwrap()["name"],
        "<img src=x onerror=alert(2)>"
    );
    assert_eq!(b.alert_text().await, None, "no script ran from a name");
    let injected = b
        .js(
            "return document.querySelectorAll('#project-rows img, #project-rows script').length;",
            json!([]),
        )
        .await;
    assert_eq!(injected, json!(0));
    let filter = b.wait_for("#filter", WAIT).await;
    b.type_text(&filter, "<script>").await;
    b.wait_until("the filter finding the hostile name", WAIT, async || {
        (ids(&rows(&b).await) == [6]).then_some(())
    })
    .await;
    let hostile_shot = b.screenshot("overview-hostile").await;
    click(&b, "tr[data-project-id='6'] a.project-link").await;
    b.wait_until("the hostile project's page", WAIT, async || {
        (text_of(&b, "#project-name").await == "<script>alert(1)</script>").then_some(())
    })
    .await;
    let title = b.js("return document.title;", json!([])).await;
    assert!(
        title
            .as_str()
            .unwrap()
            .starts_with("<script>alert(1)</script>"),
        "{title}"
    );
    assert_eq!(b.alert_text().await, None);
    assert_eq!(
        page_errors(&b).await,
        json!([]),
        "no JavaScript error on the page"
    );
    b.quit().await;
    for shot in [
        &project_shot,
        &overview_shot,
        &narrow_shot,
        &alpha_shot,
        &alpha_narrow_shot,
        &dead_shot,
        &hostile_shot,
    ] {
        assert!(std::fs::metadata(shot).unwrap().len() > 5_000, "{shot:?}");
    }
    eprintln!("browser test took {:.1} s", started.elapsed().as_secs_f64());
}

/// Without `ui_anonymous_read` the page asks for the token before it shows anything; with
/// 1,000 projects the overview stays a page of 100 compact rows, worst first, and the filter
/// and the pager answer quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_token_and_pages_through_1000_projects() {
    let started = Instant::now();
    let crm = mock(5, 5, 95).await;
    let env = Env::new(DaemonOpts {
        api_token: Some(format!("{TOKEN}\n")),
        ..DaemonOpts::default()
    })
    .await;
    // 1,000 active projects synced within the day on a daily schedule: none is due, so the
    // daemon runs 1,000 idle actors; two have an unusable (empty) key and are `failed`.
    env.sql(
        "INSERT INTO projects (id, name) SELECT g, 'shop ' || g FROM generate_series(1, 1000) g",
    )
    .await;
    env.sql(&format!(
        "INSERT INTO retailcrm_integrations \
           (project_id, api_url, api_key, is_active, sync_interval_minutes, last_sync_at) \
         SELECT g, '{}', CASE WHEN g IN (500, 900) THEN '' ELSE '{}' END, TRUE, 1440, \
           now() - (g % 20) * interval '1 hour' FROM generate_series(1, 1000) g",
        crm.url, crm.api_key
    ))
    .await;
    let daemon = env.start().await;
    daemon
        .wait_status("1,000 projects", Duration::from_secs(60), |s| {
            s.projects.len() == 1000
                && s.projects
                    .iter()
                    .filter(|p| p.state == ProjectState::Failed)
                    .count()
                    == 2
        })
        .await;
    let ready = started.elapsed();
    let base = daemon.http().await;
    let http = reqwest::Client::new();

    let (status, _) = api(&http, &base, reqwest::Method::GET, "/overview", None).await;
    assert_eq!(
        status, 401,
        "without ui_anonymous_read every read needs the token"
    );
    let t = Instant::now();
    let resp = http
        .get(format!("{base}/api/v1/overview?limit=100"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let page = resp.bytes().await.unwrap();
    let took = t.elapsed();
    let v: Value = serde_json::from_slice(&page).unwrap();
    assert_eq!(v["data"]["total"], 1000);
    assert_eq!(v["data"]["projects"].as_array().unwrap().len(), 100);
    let first: Vec<i64> = v["data"]["projects"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, [500, 900], "failed projects first");
    let full = http
        .get(format!("{base}/api/v1/projects"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    eprintln!(
        "1,000 projects: ready after {:.1} s; overview page {} bytes in {} ms; full status {} bytes",
        ready.as_secs_f64(),
        page.len(),
        took.as_millis(),
        full.len()
    );
    assert!(
        page.len() < 50_000,
        "overview page of 100 rows: {} bytes",
        page.len()
    );
    assert!(took < Duration::from_secs(2), "overview took {took:?}");

    let b = Browser::start("ui-1000", 1280, 900).await;
    b.goto(&format!("{base}/?refresh=1000")).await;
    give_token(&b, TOKEN, "read views need the API token").await;
    b.wait_until("the first page of 1,000 projects", WAIT, async || {
        let r = rows(&b).await;
        let summary = text_of(&b, "#summary").await;
        (r.len() == 100
            && summary.contains("1–100 of 1,000 projects")
            && ids(&r)[..2] == [500, 900])
        .then_some(())
    })
    .await;
    let render_ms = b
        .js(
            "return Number(document.documentElement.dataset.renderMs);",
            json!([]),
        )
        .await
        .as_f64()
        .unwrap();
    assert!(render_ms < 1000.0, "rendering 100 rows took {render_ms} ms");
    let shot = b.screenshot("overview-1000").await;
    click(&b, "#next-page").await;
    b.wait_until("the second page", WAIT, async || {
        (text_of(&b, "#summary").await.contains("101–200 of 1,000")).then_some(())
    })
    .await;
    let filter = b.wait_for("#filter", WAIT).await;
    b.type_text(&filter, "shop 777").await;
    b.wait_until("the filter finding one shop", WAIT, async || {
        (ids(&rows(&b).await) == [777]).then_some(())
    })
    .await;
    b.clear(&filter).await;
    b.type_text(&filter, "failed").await;
    b.wait_until("the filter by state", WAIT, async || {
        (ids(&rows(&b).await) == [500, 900]).then_some(())
    })
    .await;
    assert_eq!(page_errors(&b).await, json!([]));
    b.quit().await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 5_000);
    eprintln!(
        "1,000-project browser test took {:.1} s (render {render_ms} ms)",
        started.elapsed().as_secs_f64()
    );
}
