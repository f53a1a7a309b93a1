//! The RetailCRM client against the in-process mock: every method, pagination to the end,
//! history walking, writes, connection test, rate limiting and error classification.

use std::collections::BTreeSet;
use std::time::Duration;

use retailcrm_sync::crm::{ClientOptions, CrmClient, CrmError, Decoded, ErrorClass};
use retailcrm_sync::mock::{FaultConfig, MockConfig, MockCrm, MockHandle};
use retailcrm_sync::model::Stream;
use retailcrm_sync::secret::ApiKey;

fn fast_opts() -> ClientOptions {
    ClientOptions {
        requests_per_second: 0.0,
        timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

async fn mock(orders: u64, customers: u64) -> MockHandle {
    MockCrm::start(MockConfig {
        orders,
        customers,
        seed: 42,
        ..MockConfig::default()
    })
    .await
    .expect("mock starts")
}

fn client(m: &MockHandle, opts: ClientOptions) -> CrmClient {
    CrmClient::new(&m.url, ApiKey::new(m.api_key.clone()), opts).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_reference_methods() {
    let m = mock(10, 5).await;
    let c = client(&m, fast_opts());
    assert!(c.api_versions().await.unwrap().contains(&"5.0".to_string()));
    let creds = c.credentials().await.unwrap();
    assert!(creds.scopes.contains(&"order_read".to_string()));
    assert_eq!(creds.site_access.as_deref(), Some("access_full"));
    let settings = c.settings().await.unwrap();
    assert_eq!(settings.timezone, chrono_tz::Europe::Moscow);
    assert_eq!(settings.default_currency.as_deref(), Some("RUB"));
    let statuses = c.statuses().await.unwrap();
    for code in retailcrm_sync::mock::data::all_status_codes() {
        assert!(statuses[code].group.is_some(), "{code}");
    }
    assert_eq!(statuses["prepayed"].group.as_deref(), Some("approval"));
    let groups = c.status_groups().await.unwrap();
    assert!(
        groups["delivery"]
            .statuses
            .contains(&"delivering".to_string())
    );
    let sites = c.sites().await.unwrap();
    assert!(sites.contains_key("mock-shop"));
    let report = c
        .test_connection(&["order_read", "customer_read", "reference_read"])
        .await
        .unwrap();
    assert!(report.versions.contains(&"5.0".to_string()));
    assert_eq!(c.request_count(), 8);
    assert_eq!(m.request_count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_orders_and_customers_to_the_end() {
    let m = mock(250, 120).await;
    let c = client(&m, fast_opts());
    let truth = m.orders_snapshot();
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let p = c.orders_page(page, 100).await.unwrap();
        assert_eq!(p.pagination.current_page, page);
        for item in p.items {
            match item {
                Decoded::Ok(o) => seen.push(o),
                Decoded::Poison(p) => panic!("mock data must decode: {p:?}"),
            }
        }
        if p.pagination.is_last() {
            break;
        }
        page += 1;
    }
    assert_eq!(page, truth.len().div_ceil(100) as u32);
    let seen_ids: BTreeSet<i64> = seen.iter().map(|o| o.id).collect();
    let truth_ids: BTreeSet<i64> = truth.iter().map(|o| o.id).collect();
    assert_eq!(seen_ids, truth_ids);
    for o in &seen {
        let t = truth.iter().find(|t| t.id == o.id).unwrap();
        assert_eq!(o.total_summ, t.total(), "order {} total is exact", o.id);
        assert_eq!(o.status.as_deref(), Some(t.status.as_str()));
        // A corporate order's `customer` is the corporate customer (its own id space).
        let expected_customer = t.corporate.as_ref().map(|c| c.id).or(t.customer_id);
        assert_eq!(o.customer.as_ref().and_then(|c| c.id), expected_customer);
    }
    // Some orders have no contact data at all, some are linked to customers.
    assert!(
        seen.iter()
            .any(|o| o.customer.is_none() && o.email.is_none() && o.phone.is_none())
    );
    assert!(seen.iter().any(|o| o.customer.is_some()));

    let mut customers = 0;
    let mut page = 1;
    loop {
        let p = c.customers_page(page, 50).await.unwrap();
        customers += p.items.iter().filter(|d| d.ok().is_some()).count();
        if p.pagination.is_last() {
            break;
        }
        page += 1;
    }
    assert_eq!(customers, m.customers_snapshot().len());
    assert!(matches!(
        c.orders_page(1, 30).await,
        Err(CrmError::InvalidRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_by_ids() {
    let m = mock(150, 40).await;
    let c = client(&m, fast_opts());
    let ids: Vec<i64> = m.orders_snapshot().iter().take(100).map(|o| o.id).collect();
    let page = c.orders_by_ids(&ids).await.unwrap();
    let got: BTreeSet<i64> = page
        .items
        .iter()
        .filter_map(|d| d.ok())
        .map(|o| o.id)
        .collect();
    assert_eq!(got, ids.iter().copied().collect());
    let page = c.customers_by_ids(&[1, 2, 999_999]).await.unwrap();
    assert_eq!(page.items.len(), 2, "unknown ids are simply absent");
    let before = c.request_count();
    let too_many: Vec<i64> = (1..=101).collect();
    let err = c.orders_by_ids(&too_many).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(c.orders_by_ids(&[]).await.unwrap().items.is_empty());
    assert_eq!(
        c.request_count(),
        before,
        "no request for invalid or empty batches"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_history_with_since_id() {
    let m = mock(120, 60).await;
    let c = client(&m, fast_opts());
    let mut cursor: Option<i64> = None;
    let mut ids = Vec::new();
    let mut created = 0;
    loop {
        let p = c.customers_history(cursor, 100).await.unwrap();
        if p.items.is_empty() {
            break;
        }
        for r in p.items.iter().filter_map(|d| d.ok()) {
            if let Some(prev) = cursor {
                assert!(r.id > prev, "sinceId is exclusive");
            }
            created += usize::from(r.created);
            ids.push(r.id);
        }
        cursor = p.max_id();
        if p.pagination.is_last() {
            break;
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(created, 60);
    assert_eq!(
        c.latest_history_id(Stream::Customers).await.unwrap(),
        cursor
    );

    // Orders: anchor, mutate, walk from the anchor and see exactly the new records.
    let anchor = c.latest_history_id(Stream::Orders).await.unwrap().unwrap();
    let report = m.mutate_random(40, 7);
    let mut seen_new = Vec::new();
    let mut cur = anchor;
    let mut deleted = 0;
    let mut non_monotonic = false;
    let mut last_time = String::new();
    loop {
        let p = c.orders_history(Some(cur), 20).await.unwrap();
        for r in p.items.iter().filter_map(|d| d.ok()) {
            assert!(r.order_id().is_some());
            deleted += usize::from(r.deleted);
            let t = r.created_at.clone().unwrap_or_default();
            non_monotonic |= t < last_time;
            last_time = t;
            seen_new.push(r.id);
        }
        match p.max_id() {
            Some(id) => cur = id,
            None => break,
        }
    }
    assert_eq!(seen_new.first().copied(), Some(anchor + 1));
    assert_eq!(deleted as u64, report.orders_deleted);
    assert!(report.status_changes + report.orders_created > 0);
    assert_eq!(
        c.latest_history_id(Stream::Orders).await.unwrap(),
        Some(cur)
    );
    assert!(
        non_monotonic || seen_new.len() < 5,
        "createdAt is not monotonic in id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_create_and_edit() {
    let m = mock(5, 5).await;
    let c = client(&m, fast_opts());
    let cid = c
        .create_customer(&serde_json::json!({"firstName": "Ирина", "email": "irina@example.ru", "phones": [{"number": "+7 (912) 000-11-22"}]}), Some("mock-shop"))
        .await
        .unwrap();
    let oid = c
        .create_order(&serde_json::json!({"customer": {"id": cid}, "items": [{"initialPrice": 1234.5, "quantity": 1}], "email": "irina@example.ru"}), None)
        .await
        .unwrap();
    let anchor = c.latest_history_id(Stream::Orders).await.unwrap().unwrap();
    assert_eq!(
        c.edit_order(oid, &serde_json::json!({"status": "complete"}), None)
            .await
            .unwrap(),
        oid
    );
    assert_eq!(
        c.edit_customer(
            cid,
            &serde_json::json!({"email": "irina2@example.ru"}),
            None
        )
        .await
        .unwrap(),
        cid
    );
    let page = c.orders_by_ids(&[oid]).await.unwrap();
    let o = page.items[0].ok().unwrap();
    assert_eq!(o.status.as_deref(), Some("complete"));
    assert_eq!(
        o.total_summ,
        "1234.50".parse::<bigdecimal::BigDecimal>().unwrap()
    );
    assert_eq!(
        o.customer.as_ref().unwrap().email.as_deref(),
        Some("irina2@example.ru")
    );
    let h = c.orders_history(Some(anchor), 20).await.unwrap();
    let r = h.items[0].ok().unwrap();
    assert_eq!(r.field.as_deref(), Some("status"));
    assert!(r.is_own_write(), "API changes carry apiKey.current");
    // Editing something that does not exist is a permanent API error that keeps the message.
    let err = c
        .edit_order(987_654, &serde_json::json!({"status": "new"}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Not found"), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let err = c
        .create_order(&serde_json::json!({"status": "nope"}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("status"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_test_names_missing_scope_and_classifies_keys() {
    let m = mock(1, 1).await;
    let c = client(&m, fast_opts());
    m.set_scopes(&["order_read", "reference_read"]);
    let err = c
        .test_connection(&["order_read", "customer_read"])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CrmError::MissingScopes { missing } if missing == &vec!["customer_read".to_string()])
    );
    assert!(err.to_string().contains("customer_read"));
    assert_eq!(err.class(), ErrorClass::Permanent);
    let err = c.customers_page(1, 20).await.unwrap_err();
    assert!(matches!(err, CrmError::AccessDenied { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);

    m.revoke_key();
    let before = m.request_count();
    let err = c.orders_page(1, 20).await.unwrap_err();
    assert!(
        matches!(err, CrmError::InvalidKey { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(
        m.request_count(),
        before + 1,
        "permanent errors are not retried"
    );

    let wrong = CrmClient::new(&m.url, ApiKey::new("not-the-key-123"), fast_opts()).unwrap();
    m.restore_key();
    assert!(matches!(
        wrong.credentials().await.unwrap_err(),
        CrmError::InvalidKey { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_not_found_and_transient_failures() {
    let m = mock(3, 3).await;
    let c = client(
        &m,
        ClientOptions {
            read_retries: 1,
            ..fast_opts()
        },
    );
    m.set_account_exists(false);
    let err = c.orders_page(1, 20).await.unwrap_err();
    assert!(
        matches!(err, CrmError::AccountNotFound { status: 404, .. }),
        "{err:?}"
    );
    let err = c
        .create_order(&serde_json::json!({}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CrmError::AccountNotFound { status: 405, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Permanent);
    m.set_account_exists(true);

    m.set_faults(FaultConfig {
        fail_rate: 1.0,
        ..FaultConfig::default()
    });
    let before = m.request_count();
    let err = c.orders_page(1, 20).await.unwrap_err();
    assert!(
        matches!(err, CrmError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(
        m.request_count(),
        before + 2,
        "reads are retried read_retries times"
    );
    let before = m.request_count();
    let err = c
        .create_customer(&serde_json::json!({}), None)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(m.request_count(), before + 1, "writes are never retried");

    m.set_faults(FaultConfig {
        truncate_rate: 1.0,
        ..FaultConfig::default()
    });
    let err = c.orders_page(1, 20).await.unwrap_err();
    assert!(matches!(err, CrmError::Decode { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);

    m.set_faults(FaultConfig {
        slow_ms: 800,
        ..FaultConfig::default()
    });
    let slow = client(
        &m,
        ClientOptions {
            timeout: Duration::from_millis(200),
            read_retries: 0,
            ..fast_opts()
        },
    );
    let err = slow.api_versions().await.unwrap_err();
    assert!(matches!(err, CrmError::Timeout { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);

    // A few failures among successes: the retry absorbs them.
    m.set_faults(FaultConfig {
        fail_rate: 0.2,
        ..FaultConfig::default()
    });
    let sturdy = client(
        &m,
        ClientOptions {
            read_retries: 6,
            ..fast_opts()
        },
    );
    for _ in 0..10 {
        sturdy.api_versions().await.unwrap();
    }

    let url = m.url.clone();
    m.shutdown().await;
    let err = CrmClient::new(
        &url,
        ApiKey::new("k-123456"),
        ClientOptions {
            read_retries: 0,
            ..fast_opts()
        },
    )
    .unwrap()
    .api_versions()
    .await
    .unwrap_err();
    assert!(matches!(err, CrmError::Network { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_bucket_keeps_client_under_the_mock_limit() {
    let m = mock(50, 10).await;
    m.set_faults(FaultConfig {
        rate_limit: Some(10.0),
        ..FaultConfig::default()
    });
    let c = client(
        &m,
        ClientOptions {
            requests_per_second: 10.0,
            ..ClientOptions::default()
        },
    );
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..25u32 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.orders_page(1 + i % 2, 20).await.map(|p| p.items.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 20);
    }
    assert_eq!(
        m.stats().rate_limited,
        0,
        "a compliant client is never refused"
    );
    assert_eq!(c.request_count(), 25);
    assert!(
        started.elapsed() >= Duration::from_millis(2300),
        "25 requests at 10 rps take >= 2.4 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_503_are_retried_until_success() {
    let m = mock(50, 10).await;
    m.set_faults(FaultConfig {
        rate_limit: Some(10.0),
        ..FaultConfig::default()
    });
    let c = client(&m, fast_opts());
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.api_versions().await }));
    }
    for t in tasks {
        t.await.unwrap().expect("retried until it got through");
    }
    let stats = m.stats();
    assert!(stats.rate_limited > 0, "the burst was refused at first");
    assert_eq!(c.request_count(), 30 + stats.rate_limited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_budget_is_bounded() {
    let m = mock(1, 1).await;
    m.set_faults(FaultConfig {
        rate_limit: Some(0.2),
        ..FaultConfig::default()
    });
    let c = client(
        &m,
        ClientOptions {
            rate_limit_budget: Duration::from_millis(400),
            ..fast_opts()
        },
    );
    c.api_versions().await.unwrap();
    let started = std::time::Instant::now();
    let err = c.api_versions().await.unwrap_err();
    assert!(matches!(err, CrmError::RateLimited { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert!(started.elapsed() < Duration::from_secs(2));
}
