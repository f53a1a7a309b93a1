//! The mock is at least as strict as RetailCRM (retailcrm-api.md, section 3b for the live API),
//! spoken to over HTTP only: the history page cap, deep virtual history, list sort orders and
//! filters, history date filters, externalId uniqueness, creation records like the live API,
//! the real clock, single entity reads, `apiKey` as a parameter or form field, corporate orders.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use retailcrm_sync::mock::{ListOrder, MockConfig, MockCrm, MockHandle};
use retailcrm_sync::model::Stream;
use serde_json::Value;

async fn start(cfg: MockConfig) -> MockHandle {
    MockCrm::start(cfg).await.unwrap()
}

async fn mock(orders: u64, customers: u64, seed: u64) -> MockHandle {
    start(MockConfig {
        orders,
        customers,
        seed,
        ..MockConfig::default()
    })
    .await
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

async fn post(m: &MockHandle, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{}", m.url, path))
        .header("X-API-KEY", &m.api_key)
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn ids(body: &Value, key: &str) -> Vec<i64> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// Today in the account timezone (Europe/Moscow by default).
fn today() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_page_cap_like_the_live_api() {
    let m = mock(1_500, 100, 2).await;
    for path in ["/api/v5/orders/history", "/api/v5/customers/history"] {
        let (s, body) = get(&m, &format!("{path}?page=11&limit=20")).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(body["success"], false);
        assert_eq!(
            body["errorMsg"],
            "Use the shift of the filter[sinceId] instead of page parameter"
        );
        let (s, _) = get(&m, &format!("{path}?page=10&limit=20")).await;
        assert_eq!(s, 200);
        // page + sinceId stays refused with its own message.
        let (s, body) = get(&m, &format!("{path}?page=1&filter[sinceId]=3")).await;
        assert_eq!(s, 400);
        assert!(body["errorMsg"].as_str().unwrap().contains("sinceId"));
    }
    // The cap is a run-time setting; 0 means no cap.
    m.state().history_page_cap = 0;
    let (s, body) = get(&m, "/api/v5/orders/history?page=15&limit=100").await;
    assert_eq!(s, 200);
    assert_eq!(body["pagination"]["currentPage"], 15);
    m.state().history_page_cap = 3;
    let (s, _) = get(&m, "/api/v5/orders/history?page=4").await;
    assert_eq!(s, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_virtual_history_is_exact_and_cheap() {
    let m = mock(50, 30, 4).await;
    let (real_o, real_c) = {
        let st = m.state();
        (
            st.order_history.len() as u64,
            st.customer_history.len() as u64,
        )
    };
    let started = Instant::now();
    {
        let mut st = m.state();
        st.pad_history(Stream::Orders, 2_000_000, 1);
        st.pad_history(Stream::Customers, 10_000_000, 7);
        assert_eq!(st.history_len(Stream::Orders), 2_000_000 + real_o);
        assert_eq!(st.history_len(Stream::Customers), 10_000_000 + real_c);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "padding is O(real records)"
    );
    // Dense: ids 1..=2M are virtual, the real records follow, ascending.
    let (s, body) = get(&m, "/api/v5/orders/history?limit=100").await;
    assert_eq!(s, 200);
    assert_eq!(ids(&body, "history"), (1..=100).collect::<Vec<_>>());
    assert_eq!(
        body["pagination"]["totalCount"].as_u64(),
        Some(2_000_000 + real_o)
    );
    assert_eq!(
        body["pagination"]["totalPageCount"].as_u64(),
        Some((2_000_000 + real_o).div_ceil(100))
    );
    let first = &body["history"][0];
    assert_eq!(first["field"], "manager_comment");
    assert_eq!(first["source"], "user");
    let gone = first["order"]["id"].as_i64().unwrap();
    let (s, _) = get(&m, &format!("/api/v5/orders/{gone}?by=id")).await;
    assert_eq!(s, 404, "virtual records name entities that no longer exist");
    // A page across the boundary: the last virtual records, then the real ones.
    let t = Instant::now();
    let (_, body) = get(
        &m,
        "/api/v5/orders/history?filter[sinceId]=1999990&limit=20",
    )
    .await;
    assert!(t.elapsed() < Duration::from_millis(500));
    let page = ids(&body, "history");
    assert_eq!(page[..10], (1_999_991..=2_000_000).collect::<Vec<_>>()[..]);
    assert_eq!(
        page[10], 2_000_001,
        "real records start right above the padding"
    );
    assert!(page.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(body["pagination"]["totalCount"].as_u64(), Some(10 + real_o));
    assert!(
        body["history"][10]["created"] == true,
        "the first real record is a creation"
    );
    // Sparse customers: ids 1, 8, 15, ...; sinceId between two ids.
    let (_, body) = get(&m, "/api/v5/customers/history?filter[sinceId]=9&limit=20").await;
    assert_eq!(ids(&body, "history")[..3], [15, 22, 29]);
    assert_eq!(
        body["pagination"]["totalCount"].as_u64(),
        Some(10_000_000 - 2 + real_c)
    );
    let last_virtual = 1 + 7 * (10_000_000 - 1);
    let (_, body) = get(
        &m,
        &format!(
            "/api/v5/customers/history?filter[sinceId]={}&limit=100",
            last_virtual - 1
        ),
    )
    .await;
    let page = ids(&body, "history");
    assert_eq!(page[0], last_virtual);
    assert_eq!(page[1], 70_000_001);
    assert_eq!(page.len() as u64, 1 + real_c);
    // Page 10 (within the cap) without sinceId: offset exact.
    let (_, body) = get(&m, "/api/v5/customers/history?page=10&limit=100").await;
    assert_eq!(ids(&body, "history")[0], 1 + 7 * 900);
    // New changes land above everything.
    m.mutate_random(5, 3);
    let (latest_o, _) = m.state().latest_history_ids();
    assert!(latest_o.unwrap() > 2_000_000 + real_o as i64);
    // History date filters reach into the virtual records (2000..2015) exactly.
    let (_, body) = get(
        &m,
        "/api/v5/orders/history?filter[startDate]=2005-01-01&filter[endDate]=2005-01-01 00:59:59&limit=100",
    )
    .await;
    let total = body["pagination"]["totalCount"].as_u64().unwrap();
    assert!(total > 0 && total < 100, "{total}");
    for r in body["history"].as_array().unwrap() {
        let at = r["createdAt"].as_str().unwrap();
        assert!(
            ("2005-01-01 00:00:00"..="2005-01-01 00:59:59").contains(&at),
            "{at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_orders_newest_oldest_and_unstable() {
    let m = mock(120, 60, 5).await;
    let (_, body) = get(&m, "/api/v5/orders?limit=20").await;
    let newest = ids(&body, "orders");
    assert!(newest.windows(2).all(|w| w[0] > w[1]));
    m.state().list_order = ListOrder::OldestFirst;
    let (_, body) = get(&m, "/api/v5/customers?limit=20").await;
    assert_eq!(ids(&body, "customers"), (1..=20).collect::<Vec<_>>());
    m.state().list_order = ListOrder::Unstable { seed: 11 };
    let mut firsts = BTreeSet::new();
    let mut union = BTreeSet::new();
    for page in 1..=6 {
        let (_, body) = get(&m, &format!("/api/v5/orders?limit=20&page={page}")).await;
        let page_ids = ids(&body, "orders");
        firsts.insert(page_ids[0]);
        union.extend(page_ids);
    }
    let (_, body) = get(&m, "/api/v5/orders?limit=20&page=1").await;
    let a = ids(&body, "orders");
    let (_, body) = get(&m, "/api/v5/orders?limit=20&page=1").await;
    assert_ne!(
        a,
        ids(&body, "orders"),
        "the same page differs between requests"
    );
    let live: BTreeSet<i64> = m.state().order_ids().iter().copied().collect();
    assert!(union.is_subset(&live));
    assert!(
        union.len() < live.len(),
        "paging by page over an unstable order misses entities"
    );
    // Filtered lists follow the order too.
    let (_, body) = get(
        &m,
        "/api/v5/orders?filter[ids][]=1&filter[ids][]=2&filter[ids][]=3",
    )
    .await;
    let mut got = ids(&body, "orders");
    got.sort_unstable();
    assert!(got.iter().all(|id| [1, 2, 3].contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_combine_like_retailcrm() {
    let m = mock(300, 150, 6).await;
    let orders = m.orders_snapshot();
    let customers = m.customers_snapshot();
    // A creation window on a day with orders: date-only To means through 23:59:59.
    let day = orders[150].created_at[..10].to_string();
    let expect: BTreeSet<i64> = orders
        .iter()
        .filter(|o| o.created_at.starts_with(&day))
        .map(|o| o.id)
        .collect();
    let (s, body) = get(
        &m,
        &format!("/api/v5/orders?filter[createdAtFrom]={day}&filter[createdAtTo]={day}&limit=100"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        ids(&body, "orders").into_iter().collect::<BTreeSet<_>>(),
        expect
    );
    assert_eq!(
        body["pagination"]["totalCount"].as_u64(),
        Some(expect.len() as u64)
    );
    // Date-time bounds are inclusive on both ends.
    let at = &orders[100].created_at;
    let (_, body) = get(
        &m,
        &format!("/api/v5/orders?filter[createdAtFrom]={at}&filter[createdAtTo]={at}"),
    )
    .await;
    assert!(ids(&body, "orders").contains(&orders[100].id));
    // Customers: dateFrom/dateTo.
    let cday = customers[70].created_at[..10].to_string();
    let cexpect: BTreeSet<i64> = customers
        .iter()
        .filter(|c| c.created_at.starts_with(&cday))
        .map(|c| c.id)
        .collect();
    let (_, body) = get(
        &m,
        &format!("/api/v5/customers?filter[dateFrom]={cday}&filter[dateTo]={cday}&limit=100"),
    )
    .await;
    assert_eq!(
        ids(&body, "customers").into_iter().collect::<BTreeSet<_>>(),
        cexpect
    );
    // Unparsable dates are input errors.
    for q in [
        "/api/v5/orders?filter[createdAtFrom]=yesterday",
        "/api/v5/orders?filter[createdAtTo]=2025-13-01",
        "/api/v5/customers?filter[dateFrom]=01.02.2025",
        "/api/v5/orders/history?filter[startDate]=soon",
    ] {
        let (s, body) = get(&m, q).await;
        assert_eq!(s, 400, "{q}: {body}");
        assert_eq!(body["success"], false);
    }
    // numbers, externalIds, sites; PHP-style indexed keys; AND with ids.
    let with_ext: Vec<_> = orders.iter().filter(|o| o.external_id.is_some()).collect();
    let (e1, e2) = (with_ext[0], with_ext[1]);
    let (_, body) = get(
        &m,
        &format!(
            "/api/v5/orders?filter[externalIds][0]={}&filter[externalIds][1]={}",
            e1.external_id.as_deref().unwrap(),
            e2.external_id.as_deref().unwrap()
        ),
    )
    .await;
    let mut got = ids(&body, "orders");
    got.sort_unstable();
    assert_eq!(got, vec![e1.id, e2.id]);
    let (_, body) = get(
        &m,
        &format!(
            "/api/v5/orders?filter[ids][0]={}&filter[externalIds][]={}",
            e1.id,
            e2.external_id.as_deref().unwrap()
        ),
    )
    .await;
    assert!(ids(&body, "orders").is_empty(), "filters combine with AND");
    let (_, body) = get(
        &m,
        &format!(
            "/api/v5/orders?filter[numbers][]={}&filter[numbers][]=nope",
            orders[3].number
        ),
    )
    .await;
    assert_eq!(ids(&body, "orders"), vec![orders[3].id]);
    let (_, body) = get(
        &m,
        "/api/v5/orders?filter[ids][0]=5&filter[ids][1]=7&limit=20",
    )
    .await;
    let (_, body2) = get(
        &m,
        "/api/v5/orders?filter[ids][]=5&filter[ids][]=7&limit=20",
    )
    .await;
    assert_eq!(ids(&body, "orders"), ids(&body2, "orders"));
    let (_, body) = get(&m, "/api/v5/orders?filter[sites][]=other-shop").await;
    assert_eq!(body["pagination"]["totalCount"], 0);
    let (_, body) = get(
        &m,
        "/api/v5/customers?filter[sites][]=mock-shop&filter[sites][]=x",
    )
    .await;
    assert_eq!(
        body["pagination"]["totalCount"].as_u64(),
        Some(customers.len() as u64)
    );
    let cext = customers.iter().find(|c| c.external_id.is_some()).unwrap();
    let (_, body) = get(
        &m,
        &format!(
            "/api/v5/customers?filter[externalIds][]={}",
            cext.external_id.as_deref().unwrap()
        ),
    )
    .await;
    assert_eq!(ids(&body, "customers"), vec![cext.id]);
    // Unknown filters are ignored, as RetailCRM does.
    let (s, body) = get(&m, "/api/v5/orders?filter[updatedAtFrom]=2025-01-01").await;
    assert_eq!(s, 200);
    assert_eq!(
        body["pagination"]["totalCount"].as_u64(),
        Some(orders.len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_date_filters_with_since_id() {
    let m = mock(200, 50, 7).await;
    let records: Vec<(i64, String)> = m
        .state()
        .order_history
        .iter()
        .map(|h| (h.id, h.created_at.clone()))
        .collect();
    let (from, to) = (records[40].1.clone(), records[120].1.clone());
    let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
    let since = records[60].0;
    let expect: Vec<i64> = records
        .iter()
        .filter(|(id, at)| *id > since && *at >= lo && *at <= hi)
        .map(|(id, _)| *id)
        .collect();
    let (s, body) = get(
        &m,
        &format!(
            "/api/v5/orders/history?filter[startDate]={lo}&filter[endDate]={hi}&filter[sinceId]={since}&limit=100"
        ),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ids(&body, "history"), expect);
    assert_eq!(
        body["pagination"]["totalCount"].as_u64(),
        Some(expect.len() as u64)
    );
    // Date-only endDate: through the end of that day.
    let day = &records[0].1[..10];
    let (_, body) = get(
        &m,
        &format!("/api/v5/customers/history?filter[endDate]={day}&limit=100"),
    )
    .await;
    for r in body["history"].as_array().unwrap() {
        assert!(r["createdAt"].as_str().unwrap() <= format!("{day} 23:59:59").as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_are_unique_per_site() {
    let m = mock(10, 10, 8).await;
    let (s, _) = post(
        &m,
        "/api/v5/orders/create",
        &[("order", r#"{"externalId":"x-1"}"#)],
    )
    .await;
    assert_eq!(s, 201);
    let (s, body) = post(
        &m,
        "/api/v5/orders/create",
        &[("order", r#"{"externalId":"x-1"}"#)],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(body["success"], false);
    assert_eq!(
        body["errorMsg"],
        "Order with externalId \"x-1\" already exists."
    );
    let (s, body) = post(
        &m,
        "/api/v5/orders/create",
        &[("order", r#"{"externalId":"x-2"}"#)],
    )
    .await;
    assert_eq!(s, 201);
    let id2 = body["id"].as_i64().unwrap();
    // An edit may not take another order's externalId, but may keep its own.
    let (s, body) = post(
        &m,
        &format!("/api/v5/orders/{id2}/edit"),
        &[("by", "id"), ("order", r#"{"externalId":"x-1"}"#)],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = post(
        &m,
        "/api/v5/orders/x-2/edit",
        &[("order", r#"{"externalId":"x-2","firstName":"Ян"}"#)],
    )
    .await;
    assert_eq!(s, 200);
    let (_, body) = get(&m, "/api/v5/orders/x-2").await;
    assert_eq!(body["order"]["id"], id2);
    // Customers.
    let (s, _) = post(
        &m,
        "/api/v5/customers/create",
        &[("customer", r#"{"externalId":"k"}"#)],
    )
    .await;
    assert_eq!(s, 201);
    let (s, body) = post(
        &m,
        "/api/v5/customers/create",
        &[("customer", r#"{"externalId":"k"}"#)],
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        body["errorMsg"],
        "Customer with externalId \"k\" already exists."
    );
    let (s, body) = post(
        &m,
        "/api/v5/customers/create",
        &[("customer", r#"{"externalId":"k2"}"#)],
    )
    .await;
    assert_eq!(s, 201);
    let cid = body["id"].as_i64().unwrap();
    let (s, _) = post(
        &m,
        &format!("/api/v5/customers/{cid}/edit"),
        &[("by", "id"), ("customer", r#"{"externalId":"k"}"#)],
    )
    .await;
    assert_eq!(s, 400);
    // Renaming frees the old externalId.
    let (s, _) = post(
        &m,
        "/api/v5/customers/k2/edit",
        &[("customer", r#"{"externalId":"k3"}"#)],
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = get(&m, "/api/v5/customers/k2").await;
    assert_eq!(s, 404);
    let (_, body) = get(&m, "/api/v5/customers/k3").await;
    assert_eq!(body["customer"]["id"], cid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_records_look_like_the_live_api() {
    let m = mock(80, 20, 9).await;
    let (_, body) = get(&m, "/api/v5/orders/history?limit=100").await;
    let created: Vec<&Value> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["created"] == true)
        .collect();
    assert!(!created.is_empty());
    for r in &created {
        assert_eq!(r["field"], "status");
        assert_eq!(r["oldValue"], Value::Null);
        assert_eq!(r["newValue"]["code"], r["order"]["status"]);
        assert!(
            r["order"]["payments"].is_array(),
            "{}",
            r["order"]["payments"]
        );
    }
    assert!(
        created.iter().any(|r| r["order"]["payments"]
            .as_array()
            .is_some_and(|p| !p.is_empty())),
        "some created orders carry payments, as a list"
    );
    // Lists keep the object shape.
    let (_, list) = get(&m, "/api/v5/orders?limit=100").await;
    assert!(
        list["orders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["payments"].is_object())
    );
    let (_, body) = get(&m, "/api/v5/customers/history?limit=20").await;
    let r = &body["history"][0];
    assert_eq!(r["created"], true);
    assert_eq!(r["field"], "id");
    assert_eq!(r["oldValue"], Value::Null);
    assert_eq!(r["newValue"], r["customer"]["id"]);
    // Our client decodes the live API's created records.
    let c = retailcrm_sync::crm::CrmClient::new(
        &m.url,
        retailcrm_sync::secret::ApiKey::new(m.api_key.clone()),
        Default::default(),
    )
    .unwrap();
    let page = c.orders_history(None, 100).await.unwrap();
    assert_eq!(page.items.len(), m.state().order_history.len().min(100));
    assert!(
        page.items
            .iter()
            .all(|r| matches!(r, retailcrm_sync::crm::Decoded::Ok(_))),
        "every record decodes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clock_in_the_account_timezone() {
    let m = mock(200, 50, 10).await;
    let now = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Moscow)
        .naive_local();
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let newest = m
        .orders_snapshot()
        .iter()
        .map(|o| o.created_at.clone())
        .max()
        .unwrap();
    assert!(newest <= fmt(now), "{newest} is not in the future");
    assert!(
        newest >= fmt(now - chrono::Duration::days(2)),
        "{newest}: generated accounts end near now"
    );
    let (s, body) = post(
        &m,
        "/api/v5/orders/create",
        &[("order", r#"{"firstName":"Вера"}"#)],
    )
    .await;
    assert_eq!(s, 201);
    let id = body["id"].as_i64().unwrap();
    let created_at = body["order"]["createdAt"].as_str().unwrap().to_string();
    assert!(created_at.as_str() >= fmt(now - chrono::Duration::minutes(1)).as_str());
    let (_, body) = get(
        &m,
        &format!("/api/v5/orders?filter[createdAtFrom]={}&limit=100", today()),
    )
    .await;
    assert!(
        ids(&body, "orders").contains(&id),
        "created today is found by today's date"
    );
    let (_, body) = get(&m, "/api/v5/orders/history?filter[sinceId]=200&limit=100").await;
    let last = body["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["order"]["id"], id);
    assert_eq!(last["createdAt"], created_at.as_str());
    let (_, body) = get(&m, "/api/v5/orders/history?limit=20").await;
    assert!(
        body["generatedAt"].as_str().unwrap() >= fmt(now - chrono::Duration::minutes(1)).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_entity_reads() {
    let m = mock(30, 20, 11).await;
    let o = m
        .orders_snapshot()
        .into_iter()
        .find(|o| o.external_id.is_some())
        .unwrap();
    let ext = o.external_id.clone().unwrap();
    let (s, body) = get(&m, &format!("/api/v5/orders/{}?by=id", o.id)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["order"]["id"], o.id);
    let (s, body) = get(&m, &format!("/api/v5/orders/{ext}?site=mock-shop")).await;
    assert_eq!(s, 200, "by defaults to externalId");
    assert_eq!(body["order"]["id"], o.id);
    let (s, body) = get(&m, &format!("/api/v5/orders/{}", o.id)).await;
    assert_eq!(s, 404, "an id is looked up as externalId by default");
    assert_eq!(
        body,
        serde_json::json!({"success": false, "errorMsg": "Not found"})
    );
    let (s, _) = get(&m, "/api/v5/orders/1?by=number").await;
    assert_eq!(s, 400);
    let c = m.customers_snapshot()[0].clone();
    let (s, body) = get(&m, &format!("/api/v5/customers/{}?by=id", c.id)).await;
    assert_eq!(s, 200);
    assert_eq!(body["customer"]["id"], c.id);
    assert_eq!(body["customer"]["type"], "customer");
    let (s, _) = get(&m, "/api/v5/customers/999999?by=id").await;
    assert_eq!(s, 404);
    // The fixed routes still win over `{key}`.
    let (s, body) = get(&m, "/api/v5/orders/history?limit=20").await;
    assert_eq!(s, 200);
    assert!(body["history"].is_array());
    let (s, _) = get(&m, "/api/v5/orders/create").await;
    assert_eq!(s, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_as_query_or_form_parameter() {
    let m = mock(5, 5, 12).await;
    let http = reqwest::Client::new();
    let key = m.api_key.clone();
    let r = http
        .get(format!("{}/api/v5/orders?apiKey={key}", m.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{}/api/v5/customers/create", m.url))
        .form(&[
            ("apiKey", key.as_str()),
            ("customer", r#"{"firstName":"Лев"}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "the legacy PHP client's form field"
    );
    let r = http
        .post(format!("{}/api/v5/customers/create", m.url))
        .form(&[("apiKey", "wrong"), ("customer", r#"{"firstName":"Лев"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errorMsg"], "Wrong \"apiKey\" value.");
    let r = http
        .get(format!("{}/api/v5/orders?apiKey=wrong", m.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corporate_orders_with_and_without_contact() {
    let m = mock(2_000, 300, 13).await;
    let again = mock(2_000, 300, 13).await;
    assert_eq!(
        m.orders_snapshot(),
        again.orders_snapshot(),
        "deterministic by seed"
    );
    let corporate: Vec<_> = m
        .orders_snapshot()
        .into_iter()
        .filter(|o| o.corporate.is_some())
        .collect();
    let share = corporate.len() as f64 / 2_000.0;
    assert!((0.015..0.05).contains(&share), "{share}");
    let with_contact: Vec<_> = corporate
        .iter()
        .filter(|o| o.contact_id.is_some())
        .collect();
    assert!(!with_contact.is_empty() && with_contact.len() < corporate.len());
    let o = with_contact[0];
    let (_, body) = get(&m, &format!("/api/v5/orders/{}?by=id", o.id)).await;
    let order = &body["order"];
    assert_eq!(order["customer"]["type"], "customer_corporate");
    assert!(
        order["customer"]["nickName"]
            .as_str()
            .unwrap()
            .starts_with("ООО")
    );
    assert_eq!(order["customer"]["id"], o.corporate.as_ref().unwrap().id);
    assert_eq!(order["contact"]["type"], "customer");
    let contact_id = order["contact"]["id"].as_i64().unwrap();
    assert_eq!(Some(contact_id), o.contact_id);
    let (s, _) = get(&m, &format!("/api/v5/customers/{contact_id}?by=id")).await;
    assert_eq!(s, 200, "the contact is an existing ordinary customer");
    assert!(order["contact"]["firstName"].is_string());
    assert!(order["contact"]["phones"].is_array());
    let without = corporate.iter().find(|o| o.contact_id.is_none()).unwrap();
    let (_, body) = get(&m, &format!("/api/v5/orders/{}?by=id", without.id)).await;
    assert_eq!(body["order"]["customer"]["type"], "customer_corporate");
    assert!(body["order"].get("contact").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_lists_of_400k_orders_are_fast() {
    let _heavy = crate::mock_server::HEAVY.lock().await;
    let m = mock(400_000, 50_000, 14).await;
    let orders = m.orders_snapshot();
    let from = orders[300_000].created_at[..10].to_string();
    let recent = orders[orders.len() - 1_000].created_at.clone();
    let mut worst = Duration::ZERO;
    let t = Instant::now();
    let n = 200;
    for i in 0..n {
        // A snapshot walk over a window (same filter, moving page), re-fetches by id, and a
        // fresh narrow window now and then.
        let q = match i % 4 {
            0 | 1 => format!(
                "/api/v5/orders?filter[createdAtFrom]={from}&limit=100&page={}",
                1 + i
            ),
            2 => format!(
                "/api/v5/orders?filter[ids][]={}&filter[ids][]={}&limit=100",
                1 + i,
                999 * i
            ),
            _ => format!(
                "/api/v5/orders?filter[createdAtFrom]={recent}&filter[createdAtTo]={}&limit=100",
                today()
            ),
        };
        let r = Instant::now();
        let (s, _) = get(&m, &q).await;
        assert_eq!(s, 200);
        worst = worst.max(r.elapsed());
    }
    let per_request = t.elapsed() / n;
    println!("400k orders: filtered list requests {per_request:?} on average, worst {worst:?}");
    assert!(per_request < Duration::from_millis(50), "{per_request:?}");
}

/// Kills the spawned mock when the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_flags_pad_history_cap_pages_and_order_lists() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let key = "cli-strict-key-0123456789";
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
            .args([
                "mock-crm",
                "--listen",
                "127.0.0.1:0",
                "--orders",
                "40",
                "--customers",
                "20",
                "--api-key",
                key,
                "--pad-order-history",
                "3000000",
                "--pad-customer-history",
                "500",
                "--history-stride",
                "3",
                "--history-page-cap",
                "2",
                "--list-order",
                "oldest",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mock-crm"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{url}{path}"))
            .header("X-API-KEY", key)
            .send()
    };
    let r = get("/api/v5/orders/history?page=3").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = get("/api/v5/orders/history?page=2&limit=20")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["history"][0]["id"], 1 + 3 * 20);
    let body: Value = get("/api/v5/orders?limit=20")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = ids(&body, "orders");
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let stats: Value = http
        .get(format!("{url}/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["counts"]["order_history"].as_u64().unwrap() > 3_000_000);
    // Our client finds the newest record without a deep page (sparse ids: probes by sinceId).
    let c = retailcrm_sync::crm::CrmClient::new(
        &url,
        retailcrm_sync::secret::ApiKey::new(key),
        retailcrm_sync::crm::ClientOptions {
            requests_per_second: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let latest = c.latest_history_id(Stream::Orders).await.unwrap();
    assert_eq!(latest, stats["latestOrderHistoryId"].as_i64());
    let latest = c.latest_history_id(Stream::Customers).await.unwrap();
    assert_eq!(latest, stats["latestCustomerHistoryId"].as_i64());
    assert!(c.request_count() < 200, "{} requests", c.request_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_anchor_never_asks_for_a_deep_page() {
    for (count, stride) in [(0, 1), (150, 1), (2_000_000, 1), (1_000_000, 13)] {
        let m = mock(120, 10, 15).await;
        m.state().pad_history(Stream::Orders, count, stride);
        m.state().history_page_cap = 1;
        let c = retailcrm_sync::crm::CrmClient::new(
            &m.url,
            retailcrm_sync::secret::ApiKey::new(m.api_key.clone()),
            retailcrm_sync::crm::ClientOptions {
                requests_per_second: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let want = m.state().latest_history_ids().0;
        let got = c.latest_history_id(Stream::Orders).await.unwrap();
        assert_eq!(got, want, "padding {count} stride {stride}");
        println!(
            "padding {count} stride {stride}: anchor in {} requests",
            c.request_count()
        );
        assert!(c.request_count() < 120);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_merges_are_reported_like_retailcrm() {
    let m = mock(300, 40, 16).await;
    let orders = m.orders_snapshot();
    let from = orders.iter().find_map(|o| o.customer_id).unwrap();
    let into = m
        .customers_snapshot()
        .iter()
        .map(|c| c.id)
        .find(|id| *id != from)
        .unwrap();
    let moved: Vec<i64> = orders
        .iter()
        .filter(|o| o.customer_id == Some(from))
        .map(|o| o.id)
        .collect();
    let (o0, c0) = m.state().latest_history_ids();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/admin/customers/{from}/merge?into={into}",
            m.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["merged"], true);
    let (s, _) = get(&m, &format!("/api/v5/customers/{from}?by=id")).await;
    assert_eq!(s, 404, "the merged-away customer is gone");
    let (_, body) = get(
        &m,
        &format!("/api/v5/customers/history?filter[sinceId]={}", c0.unwrap()),
    )
    .await;
    let r = &body["history"][0];
    assert_eq!(r["deleted"], true);
    assert_eq!(r["source"], "combine");
    assert_eq!(r["customer"]["id"], from);
    assert_eq!(r["combinedTo"]["id"], into);
    let (_, body) = get(
        &m,
        &format!(
            "/api/v5/orders/history?filter[sinceId]={}&limit=100",
            o0.unwrap()
        ),
    )
    .await;
    let relinked: Vec<i64> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["field"] == "customer" && r["newValue"]["id"] == into)
        .map(|r| r["order"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(relinked, moved);
    let (_, body) = get(&m, &format!("/api/v5/orders/{}?by=id", moved[0])).await;
    assert_eq!(body["order"]["customer"]["id"], into);
}
