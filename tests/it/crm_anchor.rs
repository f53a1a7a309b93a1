//! The history anchor against an account whose history is far deeper than RetailCRM lets
//! anyone page (the mock's page cap is on, as the live API's is): found exactly, in a bounded
//! number of `limit=20` requests, without a single `page` parameter; and a first sync of such
//! an account stores every order.

use std::collections::HashMap;

use retailcrm_sync::mock::{MockConfig, MockCrm};
use retailcrm_sync::model::Stream;
use retailcrm_sync::sync::JobSpec;

use crate::sync_support::{Spec, World, assert_level_with_mock, client_for};

#[tokio::test]
async fn the_newest_id_of_millions_of_records_takes_at_most_forty_requests() {
    let mock = MockCrm::start(MockConfig {
        orders: 60,
        customers: 30,
        seed: 51,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    {
        let mut st = mock.state();
        st.pad_history(Stream::Orders, 10_000_000, 1);
        st.pad_history(Stream::Customers, 2_000_000, 17);
        assert!(st.history_len(Stream::Orders) > 10_000_000);
    }
    let client = client_for(&mock);
    let (orders_newest, customers_newest) = mock.state().latest_history_ids();
    for (stream, expected) in [
        (Stream::Orders, orders_newest),
        (Stream::Customers, customers_newest),
    ] {
        let before = mock.request_count();
        let found = client.history_anchor(stream).await.unwrap();
        let used = mock.request_count() - before;
        println!("{stream}: {found:?}, {used} requests");
        assert_eq!(found.newest, expected, "{stream}");
        assert!(found.exact, "{stream}: {found:?}");
        assert!(used <= 40, "{stream}: {used} requests");
        assert_eq!(u64::from(found.requests), used);
    }
    // The backlog above a cursor is one request.
    let before = mock.request_count();
    let behind = client
        .history_backlog(Stream::Orders, orders_newest.unwrap() - 250)
        .await
        .unwrap();
    assert_eq!(behind, Some(250));
    assert_eq!(mock.request_count() - before, 1);
}

#[tokio::test]
async fn a_deep_history_page_is_refused_like_retailcrm_does() {
    let mock = MockCrm::start(MockConfig {
        orders: 30,
        customers: 10,
        seed: 52,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    mock.state().pad_history(Stream::Orders, 100_000, 1);
    let http = reqwest::Client::new();
    let get = |page: u32| {
        http.get(format!("{}/api/v5/orders/history", mock.url))
            .header("X-API-KEY", &mock.api_key)
            .query(&[("page", page.to_string()), ("limit", "100".into())])
            .send()
    };
    assert_eq!(get(10).await.unwrap().status(), 200);
    let deep = get(11).await.unwrap();
    assert_eq!(deep.status(), 400);
    let body: serde_json::Value = deep.json().await.unwrap();
    assert_eq!(
        body["errorMsg"],
        "Use the shift of the filter[sinceId] instead of page parameter"
    );
}

/// What a new user met on day one: the first sync of an account with a long history stored no
/// orders (the anchor paged to the end of the history and was refused). Now it is level with
/// the account, and the anchor took a handful of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_of_an_account_with_a_long_history_stores_every_order() {
    let w = World::new(Spec {
        orders: 400,
        customers: 120,
        seed: 53,
        page_size: 50,
        ..Spec::default()
    })
    .await;
    {
        let mut st = w.mock.state();
        st.pad_history(Stream::Orders, 2_000_000, 3);
        st.pad_history(Stream::Customers, 500_000, 1);
    }
    let before = w.routes();
    let counts = w.run(JobSpec::All { since_id: None }).await.expect("sync");
    let after = w.routes();
    let history = ["/api/v5/orders/history", "/api/v5/customers/history"]
        .iter()
        .map(|r| after.get(*r).copied().unwrap_or(0) - before.get(*r).copied().unwrap_or(0))
        .sum::<u64>();
    println!("{counts:?}; history requests {history}");
    assert!(history <= 2 * 40 + 40, "{history} history requests");
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    assert_eq!(w.orders().await.len(), w.mock.orders_snapshot().len());
}
