//! The mock follows retailcrm-api.md when spoken to directly over HTTP (no client of ours):
//! limits, history rules, auth, write encoding and status codes, determinism, throughput and
//! capacity.

use std::time::{Duration, Instant};

use retailcrm_sync::mock::{FaultConfig, MockConfig, MockCrm, MockHandle};
use serde_json::Value;

/// The throughput and capacity tests take the whole (shared, 2-core) machine: one at a time.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn mock(orders: u64, customers: u64, seed: u64) -> MockHandle {
    MockCrm::start(MockConfig {
        orders,
        customers,
        seed,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

async fn get(m: &MockHandle, path_and_query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{}", m.url, path_and_query))
        .header("X-API-KEY", &m.api_key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_history_rules() {
    let m = mock(60, 30, 3).await;
    let (s, body) = get(&m, "/api/v5/orders?limit=30").await;
    assert_eq!(s, 400);
    assert_eq!(body["success"], false);
    assert!(body["errors"]["limit"].is_string());
    let (s, body) = get(&m, "/api/v5/orders?limit=20&page=3").await;
    assert_eq!(s, 200);
    assert_eq!(body["pagination"]["totalPageCount"], 3);
    assert_eq!(body["pagination"]["currentPage"], 3);
    assert_eq!(body["orders"].as_array().unwrap().len(), 20);
    let (s, body) = get(
        &m,
        "/api/v5/orders?filter[ids][]=1&filter[ids][]=2&filter[ids][]=99999&limit=100",
    )
    .await;
    assert_eq!(s, 200);
    assert!(body["orders"].as_array().unwrap().len() <= 2);
    // History: sinceId is exclusive; page + sinceId is a 400; page alone is fine.
    let (s, body) = get(&m, "/api/v5/customers/history?filter[sinceId]=5&limit=20").await;
    assert_eq!(s, 200);
    assert_eq!(body["history"][0]["id"], 6);
    assert!(body["generatedAt"].is_string());
    let (s, body) = get(&m, "/api/v5/customers/history?filter[sinceId]=5&page=1").await;
    assert_eq!(s, 400, "{body}");
    let (s, body) = get(&m, "/api/v5/customers/history?page=2&limit=20").await;
    assert_eq!(s, 200);
    assert_eq!(body["history"][0]["id"], 21);
    // Created records carry a full snapshot, PHP quirks included.
    let (_, body) = get(&m, "/api/v5/orders/history?limit=100").await;
    let created = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["created"] == true)
        .unwrap()
        .clone();
    assert!(created["order"]["totalSumm"].is_number());
    let (_, orders) = get(&m, "/api/v5/orders?limit=100").await;
    let orders = orders["orders"].as_array().unwrap();
    assert!(
        orders
            .iter()
            .any(|o| o["payments"] == serde_json::json!({}))
    );
    assert!(
        orders
            .iter()
            .any(|o| o["customFields"] == serde_json::json!([]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_writes_and_errors() {
    let m = mock(5, 5, 1).await;
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/api/v5/orders", m.url))
        .header("X-API-KEY", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorMsg"], "Wrong \"apiKey\" value.");
    let r = http
        .get(format!("{}/api/v5/orders", m.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // apiKey as a parameter is accepted too (documented), although our client never uses it.
    let r = http
        .get(format!("{}/api/credentials?apiKey={}", m.url, m.api_key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Create: form-encoded, entity as a JSON field, 201.
    let r = http
        .post(format!("{}/api/v5/customers/create", m.url))
        .header("X-API-KEY", &m.api_key)
        .form(&[
            ("customer", r#"{"firstName":"Олег","externalId":"ext-9"}"#),
            ("site", "mock-shop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    // Edit: `by` defaults to externalId.
    let r = http
        .post(format!("{}/api/v5/customers/ext-9/edit", m.url))
        .header("X-API-KEY", &m.api_key)
        .form(&[("customer", r#"{"email":"oleg@example.ru"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], id);
    let r = http
        .post(format!("{}/api/v5/customers/{id}/edit", m.url))
        .header("X-API-KEY", &m.api_key)
        .form(&[("customer", r#"{"email":"x@example.ru"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        404,
        "an id without by=id is looked up as externalId"
    );
    let r = http
        .post(format!("{}/api/v5/orders/create", m.url))
        .header("X-API-KEY", &m.api_key)
        .form(&[("site", "mock-shop")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorMsg"],
        "Parameter 'order' is missing"
    );
    let r = http
        .get(format!("{}/api/v5/orders/create", m.url))
        .header("X-API-KEY", &m.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorMsg"],
        "Method Not Allowed"
    );
    // Rate limit: 503 with an HTML page, like nginx in front of RetailCRM.
    m.set_faults(FaultConfig {
        rate_limit: Some(2.0),
        ..FaultConfig::default()
    });
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(get(&m, "/api/api-versions").await.0);
    }
    assert!(codes.contains(&503), "{codes:?}");
    assert!(m.stats().by_endpoint["/api/api-versions"] >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_is_deterministic_and_varied() {
    let a = mock(300, 150, 9).await;
    let b = mock(300, 150, 9).await;
    let c = mock(300, 150, 10).await;
    assert_eq!(a.orders_snapshot(), b.orders_snapshot());
    assert_eq!(a.customers_snapshot(), b.customers_snapshot());
    assert_ne!(a.orders_snapshot(), c.orders_snapshot());
    let orders = a.orders_snapshot();
    let customers = a.customers_snapshot();
    let statuses: std::collections::BTreeSet<&str> =
        orders.iter().map(|o| o.status.as_str()).collect();
    assert!(
        statuses.len() >= 15,
        "most default statuses appear: {statuses:?}"
    );
    assert!(
        orders
            .iter()
            .any(|o| o.customer_id.is_none() && o.email.is_none() && o.phone.is_none())
    );
    assert!(
        orders.iter().any(|o| o.total_summ.0 % 100 != 0),
        "amounts with kopecks"
    );
    assert!(customers.iter().any(|c| {
        c.first_name
            .as_deref()
            .is_some_and(|n| n.chars().any(|ch| ('а'..='я').contains(&ch)))
    }));
    assert!(
        customers
            .iter()
            .any(|c| c.phones.iter().any(|p| p.number.starts_with("+7 (")))
    );
    assert!(
        customers
            .iter()
            .any(|c| c.phones.iter().any(|p| p.number.len() == 10))
    );
    assert!(customers.iter().any(|c| c.email.is_none()));
    let emails: Vec<&str> = customers
        .iter()
        .filter_map(|c| c.email.as_deref())
        .filter(|e| e.starts_with("family"))
        .collect();
    let unique: std::collections::BTreeSet<&&str> = emails.iter().collect();
    assert!(unique.len() < emails.len(), "some e-mails are shared");
    let st = a.state();
    assert!(
        st.order_history
            .iter()
            .any(|h| matches!(h.kind, retailcrm_sync::mock::state::HistKind::Deleted))
    );
    assert!(
        st.order_history
            .windows(2)
            .any(|w| w[1].created_at < w[0].created_at),
        "createdAt not monotonic"
    );
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0);
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A minimal keep-alive HTTP/1.1 client, so the measurement is the server's cost, not a
/// client library's.
async fn hammer(addr: std::net::SocketAddr, path: String, key: String, n: usize) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: mock\r\nX-API-KEY: {key}\r\n\r\n");
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut ok = 0;
    for _ in 0..n {
        stream.write_all(request.as_bytes()).await.unwrap();
        buf.clear();
        let (head_end, content_length) = loop {
            let mut chunk = [0u8; 16 * 1024];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..read]);
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("content-length");
                assert!(head.starts_with("http/1.1 200"), "{head}");
                break (pos + 4, len);
            }
        };
        while buf.len() < head_end + content_length {
            let mut chunk = [0u8; 16 * 1024];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0);
            buf.extend_from_slice(&chunk[..read]);
        }
        ok += 1;
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a speed goal, not a correctness check: run by hand with `cargo test --release --test it mock_server -- --ignored`"]
async fn serves_over_1000_requests_per_second() {
    let _heavy = HEAVY.lock().await;
    let m = mock(2_000, 500, 1).await;
    let n_per_conn = 250;
    let conns = 8;
    let started = Instant::now();
    let cpu_before = cpu_time();
    let mut tasks = Vec::new();
    for w in 0..conns {
        let path = format!(
            "/api/v5/orders/history?limit=20&filter[sinceId]={}",
            w * 100
        );
        tasks.push(tokio::spawn(hammer(
            m.addr,
            path,
            m.api_key.clone(),
            n_per_conn,
        )));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    let wall = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    assert_eq!(done, n_per_conn * conns);
    let rps = done as f64 / wall.as_secs_f64();
    // Requests per CPU-second of this process (server + a trivial client): what one core
    // sustains, independent of what else the shared machine is doing.
    let per_cpu_second = done as f64 / cpu.as_secs_f64().max(1e-3);
    println!(
        "mock served {rps:.0} requests/s wall, {per_cpu_second:.0} per CPU-second (20 history records with snapshots each)"
    );
    // The 1,000 req/s target is for the built binary; this unoptimised test build (our crate at
    // opt-level 0) measures ~1,200, so it must stay above 800 to catch a regression.
    let floor = if cfg!(debug_assertions) {
        800.0
    } else {
        1_000.0
    };
    assert!(
        per_cpu_second > floor,
        "{per_cpu_second:.0} requests per CPU-second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_400k_orders() {
    let _heavy = HEAVY.lock().await;
    let started = Instant::now();
    let m = mock(400_000, 100_000, 5).await;
    let built = started.elapsed();
    let (s, body) = get(&m, "/api/v5/orders?limit=100&page=4000").await;
    assert_eq!(s, 200);
    assert_eq!(
        body["pagination"]["totalPageCount"].as_u64().unwrap(),
        body["pagination"]["totalCount"]
            .as_u64()
            .unwrap()
            .div_ceil(100)
    );
    assert!(body["pagination"]["totalCount"].as_u64().unwrap() > 395_000);
    let t = Instant::now();
    let (s, _) = get(
        &m,
        "/api/v5/orders/history?limit=100&filter[sinceId]=350000",
    )
    .await;
    assert_eq!(s, 200);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "built 400k orders + 100k customers in {built:?}; deep history page in {:?}; {rss}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}
