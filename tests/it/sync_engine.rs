//! End-to-end tests of the sync engine: real Postgres (one database per test), the in-process
//! mock RetailCRM, and expectations computed here from the mock's own data (issue 5).

use crate::sync_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use retailcrm_sync::crm::ErrorClass;
use retailcrm_sync::model::{OrderStatus, Stream};
use retailcrm_sync::store::IntegrationPatch;
use retailcrm_sync::sync::{Engine, JobSpec, Progress, SyncError};
use sync_support::{
    PROJECT, Spec, World, assert_level_with_mock, count, exec, expected_status, route_diff,
};

fn orders_count_sql() -> String {
    format!("SELECT count(*) AS n FROM orders WHERE project_id = {PROJECT}")
}

/// 1. A full sync yields exactly the mock's orders and customers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_yields_exactly_the_mock_account() {
    let w = World::new(Spec {
        orders: 1200,
        customers: 400,
        seed: 21,
        page_size: 100,
        ..Spec::default()
    })
    .await;
    let counts = w.sync_all().await;
    let cov = assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    println!("full sync: {counts:?}\ncoverage: {cov:?}");
    // The generated account exercises every path the comparison claims to check.
    assert!(cov.guest_no_contact > 20, "{cov:?}");
    assert!(cov.guest_with_contact > 20, "{cov:?}");
    assert!(cov.linked > 100, "{cov:?}");
    assert!(
        cov.customers_merged > 0,
        "shared family e-mails merge: {cov:?}"
    );
    assert!(counts.users_created_from_orders > 20, "{counts:?}");
    assert_eq!(counts.poison, 0);
    assert_eq!(counts.unmapped_statuses, 0);
    let live_orders = w.mock.orders_snapshot().len() as u64;
    let live_customers = w.mock.customers_snapshot().len() as u64;
    assert_eq!(counts.fetched, live_orders + live_customers);
    // Cursors: snapshot finished, since_id at the newest history record.
    let (oh, ch) = w.mock.state().latest_history_ids();
    let oc = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    let cc = w
        .store
        .load_cursor(PROJECT, Stream::Customers)
        .await
        .unwrap();
    assert_eq!((oc.since_id, oc.snapshot_page), (oh, None));
    assert_eq!((cc.since_id, cc.snapshot_page), (ch, None));

    // A second run changes nothing and lists nothing.
    let before = w.routes();
    let again = w.sync_all().await;
    assert_eq!((again.created, again.updated, again.fetched), (0, 0, 0));
    let diff = route_diff(&before, &w.routes());
    assert!(!diff.contains_key("/api/v5/orders"), "{diff:?}");
    assert!(!diff.contains_key("/api/v5/customers"), "{diff:?}");
}

/// 2. After mutations, an incremental sync brings Postgres level, fetching only what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_fetches_only_changed_entities() {
    let w = World::new(Spec {
        orders: 1000,
        customers: 300,
        seed: 22,
        page_size: 100,
        ..Spec::default()
    })
    .await;
    w.sync_all().await;
    let (o0, c0) = w.mock.state().latest_history_ids();

    // Explicit changes of every kind, plus random ones.
    let deleted_id;
    {
        let mut st = w.mock.state();
        let ids: Vec<i64> = st.order_ids().to_vec();
        assert!(st.set_order_status(ids[3], "complete", "user") || ids[3] > 0);
        st.set_order_status(ids[4], "cancel-other", "user");
        st.add_random_order("user");
        st.add_random_order("user");
        let cid = st.customer_ids()[5];
        assert!(st.edit_customer(
            cid,
            Some(Some("Edited.Person@Example.RU".into())),
            Some(vec!["8 (900) 111-22-33".into()]),
            None,
            None,
            "user"
        ));
        deleted_id = ids[10];
        assert!(st.delete_order(deleted_id, "user"));
    }
    let report = w.mock.mutate_random(40, 99);
    assert!(
        report.status_changes > 0 && report.orders_created > 0,
        "{report:?}"
    );

    // What changed, from the mock's history (independently of the engine).
    let (changed_orders, changed_customers, order_records, customer_records) = {
        let st = w.mock.state();
        let live_o: HashSet<i64> = st.order_ids().iter().copied().collect();
        let live_c: HashSet<i64> = st.customer_ids().iter().copied().collect();
        let o: HashSet<i64> = st
            .order_history
            .iter()
            .filter(|h| Some(h.id) > o0)
            .map(|h| h.entity.id)
            .filter(|id| live_o.contains(id))
            .collect();
        let c: HashSet<i64> = st
            .customer_history
            .iter()
            .filter(|h| Some(h.id) > c0)
            .map(|h| h.entity.id)
            .filter(|id| live_c.contains(id))
            .collect();
        let nr_o = st.order_history.iter().filter(|h| Some(h.id) > o0).count();
        let nr_c = st
            .customer_history
            .iter()
            .filter(|h| Some(h.id) > c0)
            .count();
        (o, c, nr_o, nr_c)
    };
    assert!(
        order_records <= 100 && customer_records <= 100,
        "one history page each"
    );

    let before = w.routes();
    let counts = w.sync_all().await;
    let diff = route_diff(&before, &w.routes());
    println!("incremental: {counts:?}\nrequests: {diff:?}");
    let expected: BTreeMap<String, u64> = [
        ("/api/v5/settings", 1),
        ("/api/v5/reference/statuses", 1),
        ("/api/v5/reference/sites", 2), // the phone country, once per stream
        ("/api/v5/orders/history", 1),
        ("/api/v5/customers/history", 1),
        ("/api/v5/orders", 1),    // one filter[ids][] call, no list page
        ("/api/v5/customers", 1), // idem
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(diff, expected);
    assert_eq!(
        counts.fetched,
        (changed_orders.len() + changed_customers.len()) as u64
    );
    assert_eq!(
        counts.history_records,
        (order_records + customer_records) as u64
    );
    assert!(counts.deleted >= 1);
    assert_eq!(counts.requests, 8);

    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    let rows = w.orders().await;
    let gone = rows.iter().find(|r| r.rid == deleted_id).expect("kept");
    assert!(
        gone.deleted,
        "the deleted order is marked deleted, not dropped"
    );
    let users = w.users().await;
    assert!(
        users
            .iter()
            .any(|u| u.email.as_deref() == Some("edited.person@example.ru")
                && u.phone.as_deref() == Some("79001112233")),
        "the edited customer's new contact is stored"
    );
}

/// 5. Seed table, group fallback, integration override, unknown status stored raw and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_map_by_integration_then_seed_then_group_and_unknown_is_kept_raw() {
    let mapping: HashMap<String, OrderStatus> = [
        ("no-call".to_string(), OrderStatus::Pending), // a code
        ("approval".to_string(), OrderStatus::Processing), // a group
        ("complete".to_string(), OrderStatus::Refunded), // overrides the seed table
    ]
    .into_iter()
    .collect();
    let w = World::new(Spec {
        orders: 400,
        customers: 100,
        seed: 25,
        page_size: 100,
        mapping: mapping.clone(),
    })
    .await;
    // Codes only the seed table knows (not in the account's reference), and an unknown one.
    let ids: Vec<i64> = w.mock.state().order_ids().to_vec();
    let direct = ["acceptance", "delivery", "refund", "new", "assembling"];
    {
        let mut st = w.mock.state();
        for (i, code) in direct.iter().enumerate() {
            st.set_order_status(ids[i], code, "user");
        }
        st.set_order_status(ids[10], "mystery-code", "user");
    }
    let counts = w.sync_all().await;
    assert_eq!(counts.unmapped_statuses, 1, "{counts:?}");
    assert_level_with_mock(&w, &mapping, &HashMap::new()).await;

    let rows = w.orders().await;
    let row = |id: i64| rows.iter().find(|r| r.rid == id).cloned().unwrap();
    for (i, want) in [
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Refunded,
        OrderStatus::Pending,
        OrderStatus::Processing,
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(row(ids[i]).status, want.as_str(), "{}", direct[i]);
    }
    let unknown = row(ids[10]);
    assert_eq!(
        (unknown.status.as_str(), unknown.retailcrm_status.as_deref()),
        ("PENDING", Some("mystery-code"))
    );
    // Every group of the reference is exercised, and the overrides applied.
    let seen: HashSet<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    for s in ["PENDING", "PROCESSING", "SHIPPED", "CANCELLED", "REFUNDED"] {
        assert!(seen.contains(s), "{s} in {seen:?}");
    }
    assert!(
        rows.iter()
            .filter(|r| r.retailcrm_status.as_deref() == Some("client-confirmed"))
            .all(|r| r.status == "PROCESSING")
    );
    assert!(
        rows.iter()
            .filter(|r| r.retailcrm_status.as_deref() == Some("no-product"))
            .all(|r| r.status == "CANCELLED")
    );
    assert_eq!(
        expected_status("prepayed", &HashMap::new()),
        Some(OrderStatus::Confirmed),
        "approval -> CONFIRMED without an override"
    );

    // A known order moves to an unknown code: raw stored, previous platform status kept.
    let target = rows
        .iter()
        .find(|r| r.retailcrm_status.as_deref() == Some("delivering") && !r.deleted)
        .expect("a delivering order")
        .rid;
    w.mock
        .state()
        .set_order_status(target, "another-unknown", "user");
    let counts = w
        .run(JobSpec::Orders { since_id: None })
        .await
        .expect("sync");
    assert_eq!(counts.unmapped_statuses, 1);
    let previous: HashMap<i64, OrderStatus> = [(target, OrderStatus::Shipped)].into();
    assert_level_with_mock(&w, &mapping, &previous).await;
    let r = w
        .orders()
        .await
        .into_iter()
        .find(|r| r.rid == target)
        .unwrap();
    assert_eq!(
        (r.status.as_str(), r.retailcrm_status.as_deref()),
        ("SHIPPED", Some("another-unknown"))
    );
}

/// 6a. Single-entity jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_entity_jobs_sync_one_order_or_customer() {
    let w = World::new(Spec {
        orders: 300,
        customers: 100,
        seed: 26,
        ..Spec::default()
    })
    .await;
    let mock_orders = w.mock.orders_snapshot();
    let linked = mock_orders
        .iter()
        .find(|o| o.customer_id.is_some())
        .unwrap()
        .clone();
    let before = w.routes();
    let counts = w
        .run(JobSpec::Order { id: linked.id })
        .await
        .expect("sync_order");
    assert_eq!(counts.fetched, 1);
    let rows = w.orders().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].number, linked.number);
    assert_eq!(rows[0].user_cid, linked.customer_id);
    let diff = route_diff(&before, &w.routes());
    assert_eq!(diff.get("/api/v5/orders"), Some(&1), "{diff:?}");
    assert!(!diff.contains_key("/api/v5/orders/history"));

    let cust = w.mock.customers_snapshot()[7].clone();
    w.run(JobSpec::Customer { id: cust.id })
        .await
        .expect("sync_customer");
    assert!(w.users().await.iter().any(|u| u.cid == Some(cust.id)));

    // An order the list no longer has is marked deleted.
    assert!(w.mock.state().delete_order(linked.id, "user"));
    let counts = w
        .run(JobSpec::Order { id: linked.id })
        .await
        .expect("sync_order of a deleted order");
    assert_eq!(counts.deleted, 1);
    assert!(w.orders().await[0].deleted);

    // The single-entity jobs did not start or move a stream cursor's position.
    let c = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    assert_eq!((c.since_id, c.snapshot_page), (None, None));
    // A later stream sync still does its first full load.
    w.sync_all().await;
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
}

/// 6b. `since_id` replays history; it repairs rows history had already covered and never
/// moves the cursor back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_id_replays_history_without_moving_the_cursor_back() {
    let w = World::new(Spec {
        orders: 300,
        customers: 100,
        seed: 27,
        ..Spec::default()
    })
    .await;
    w.sync_all().await;
    let (anchor, _) = w.mock.state().latest_history_ids();
    let anchor = anchor.unwrap();
    let target = w.mock.orders_snapshot()[20].id;
    w.mock.state().set_order_status(target, "complete", "user");
    w.mock.state().set_order_status(target, "no-call", "user");
    w.sync_all().await;
    let top = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    // Damage the row behind the engine's back: a plain incremental run cannot see it.
    exec(
        &w.db,
        &format!(
            "UPDATE orders SET retailcrm_status = 'bogus', status = 'REFUNDED' \
             WHERE retailcrm_order_id = {target}"
        ),
    )
    .await;
    let c = w.run(JobSpec::Orders { since_id: None }).await.unwrap();
    assert_eq!(c.fetched, 0);
    let bogus = |rows: &[sync_support::DbOrder]| {
        rows.iter()
            .find(|r| r.rid == target)
            .map(|r| r.retailcrm_status.clone())
    };
    assert_eq!(bogus(&w.orders().await), Some(Some("bogus".into())));
    // Replay from before the change.
    let c = w
        .run(JobSpec::Orders {
            since_id: Some(anchor),
        })
        .await
        .unwrap();
    assert_eq!(c.history_records, 2);
    assert_eq!(c.fetched, 1);
    assert_eq!(bogus(&w.orders().await), Some(Some("no-call".into())));
    let after = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    assert_eq!(after.since_id, top.since_id, "cursor not moved back");
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
}

/// 6b'. A full resync repairs what history cannot name: rows deleted or damaged behind the
/// engine's back. An incremental run leaves them as they are; `Resync` resets the cursor, reads
/// everything again and ends with Postgres level with the mock and the cursor past the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_repairs_rows_changed_behind_the_engine() {
    let w = World::new(Spec {
        orders: 300,
        customers: 100,
        seed: 28,
        page_size: 50,
        ..Spec::default()
    })
    .await;
    w.sync_all().await;
    let all = count(&w.db, &orders_count_sql()).await;
    let victim = w.mock.orders_snapshot()[7].id;
    exec(
        &w.db,
        &format!("DELETE FROM orders WHERE project_id = {PROJECT} AND id IN (SELECT id FROM orders WHERE project_id = {PROJECT} ORDER BY id LIMIT 10)"),
    )
    .await;
    exec(
        &w.db,
        &format!(
            "UPDATE orders SET retailcrm_status = 'bogus' WHERE retailcrm_order_id = {victim}"
        ),
    )
    .await;
    let c = w.run(JobSpec::All { since_id: None }).await.unwrap();
    assert_eq!(c.fetched, 0, "nothing changed in RetailCRM");
    assert_eq!(count(&w.db, &orders_count_sql()).await, all - 10);
    let before = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();

    // Only the orders stream: the customers cursor stays where it was.
    let customers_before = w
        .store
        .load_cursor(PROJECT, Stream::Customers)
        .await
        .unwrap();
    let c = w
        .run(JobSpec::Resync {
            stream: Some(Stream::Orders),
        })
        .await
        .unwrap();
    assert_eq!(
        c.fetched,
        w.mock.orders_snapshot().len() as u64,
        "every order read again"
    );
    assert_eq!(count(&w.db, &orders_count_sql()).await, all);
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
    let after = w.store.load_cursor(PROJECT, Stream::Orders).await.unwrap();
    assert_eq!((after.snapshot_page, after.snapshot_total), (None, None));
    assert!(
        after.since_id >= before.since_id,
        "history goes on from a fresh anchor"
    );
    assert!(after.version > before.version);
    assert_eq!(
        w.store
            .load_cursor(PROJECT, Stream::Customers)
            .await
            .unwrap(),
        customers_before
    );

    // Both streams, and a resync of an account that changed meanwhile still lands level.
    w.mock.state().set_order_status(victim, "complete", "user");
    let c = w.run(JobSpec::Resync { stream: None }).await.unwrap();
    // The new anchors are taken after the change, so the snapshots alone carry it.
    let everything = w.mock.orders_snapshot().len() + w.mock.customers_snapshot().len();
    assert_eq!(
        (c.fetched, c.history_records),
        (everything as u64, 0),
        "{c:?}"
    );
    assert_level_with_mock(&w, &HashMap::new(), &HashMap::new()).await;
}

/// 6d. The integration's date filter (`orders_created_from`): the snapshot asks RetailCRM for
/// the orders created from that date only, and orders named by history that are older are
/// left out and counted; newer ones flow as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_created_before_the_filter_date_are_left_out() {
    let w = World::new(Spec {
        orders: 400,
        customers: 100,
        seed: 29,
        page_size: 50,
        ..Spec::default()
    })
    .await;
    // The median creation day of the account, so about half the orders are older.
    let mut days: Vec<String> = w
        .mock
        .orders_snapshot()
        .iter()
        .map(|o| o.created_at[..10].to_string())
        .collect();
    days.sort();
    let from = days[days.len() / 2].clone();
    let integration = w
        .store
        .update_integration(
            PROJECT,
            &IntegrationPatch {
                orders_created_from: Some(Some(from.parse().unwrap())),
                ..IntegrationPatch::default()
            },
        )
        .await
        .unwrap();
    let engine = Engine::new(w.store.clone(), w.client.clone(), integration, w.page_size);
    let expected = |w: &World| -> BTreeMap<i64, String> {
        w.mock
            .orders_snapshot()
            .iter()
            .filter(|o| o.created_at.as_str() >= from.as_str())
            .map(|o| (o.id, o.number.clone()))
            .collect()
    };
    let stored = |rows: Vec<sync_support::DbOrder>| -> BTreeMap<i64, String> {
        rows.into_iter().map(|r| (r.rid, r.number)).collect()
    };
    let before = w.routes();
    let c = engine
        .run(JobSpec::All { since_id: None }, &Progress::new())
        .await
        .unwrap();
    let want = expected(&w);
    assert!(want.len() > 50 && want.len() < 350, "{}", want.len());
    assert_eq!(stored(w.orders().await), want);
    assert_eq!(
        c.filtered_out, 0,
        "the list itself was filtered by RetailCRM"
    );
    let listed = route_diff(&before, &w.routes())
        .get("/api/v5/orders")
        .copied()
        .unwrap_or(0);
    // Windows start at the filter date: about one per 85% of a page of filtered orders, plus
    // a few to find where the orders begin; nowhere near the whole account's.
    let whole = (w.mock.orders_snapshot().len() as u64).div_ceil(50);
    assert!(
        listed <= (want.len() as u64).div_ceil(42) + 8,
        "{listed} list requests for {} filtered orders ({whole} pages in all)",
        want.len()
    );

    // History names an old order (status change) and a new one: only the new one is stored.
    let old = w
        .mock
        .orders_snapshot()
        .iter()
        .find(|o| o.created_at.as_str() < from.as_str())
        .unwrap()
        .id;
    w.mock.state().set_order_status(old, "complete", "user");
    let fresh = w.mock.state().add_random_order("user");
    let c = engine
        .run(JobSpec::All { since_id: None }, &Progress::new())
        .await
        .unwrap();
    assert_eq!(c.filtered_out, 1, "{c:?}");
    let rows = stored(w.orders().await);
    assert!(rows.contains_key(&fresh));
    assert!(!rows.contains_key(&old));
    assert_eq!(rows, expected(&w));
}

/// 6c. Stream switches and the active flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_skip_streams_and_inactive_is_permanent() {
    let mut w = World::new(Spec {
        orders: 200,
        customers: 80,
        seed: 28,
        ..Spec::default()
    })
    .await;
    w.integration.sync_orders = false;
    let before = w.routes();
    let c = w.sync_all().await;
    assert_eq!(c.skipped_streams, vec![Stream::Orders]);
    let diff = route_diff(&before, &w.routes());
    // Customers only, and the account's country for their phones.
    assert!(
        diff.keys()
            .all(|k| k.starts_with("/api/v5/customers") || k == "/api/v5/reference/sites"),
        "{diff:?}"
    );
    assert_eq!(count(&w.db, &orders_count_sql()).await, 0);
    assert!(!w.users().await.is_empty());

    w.integration.sync_orders = true;
    w.integration.sync_customers = false;
    let c = w.sync_all().await;
    assert_eq!(c.skipped_streams, vec![Stream::Customers]);
    assert!(count(&w.db, &orders_count_sql()).await > 0);
    let c = w.run(JobSpec::Customers { since_id: None }).await.unwrap();
    assert_eq!(c.skipped_streams, vec![Stream::Customers]);

    w.integration.is_active = false;
    let before = w.mock.request_count();
    let err = w.run(JobSpec::All { since_id: None }).await.unwrap_err();
    assert!(matches!(err, SyncError::Inactive(PROJECT)), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(w.mock.request_count(), before, "no request when inactive");
}

/// 7. A record that cannot be mapped is stored aside; the rest of its batch is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_isolated_and_the_batch_goes_on() {
    let w = World::new(Spec {
        orders: 300,
        customers: 100,
        seed: 29,
        page_size: 100,
        ..Spec::default()
    })
    .await;
    let strip_number = |id: i64| {
        let mut st = w.mock.state();
        let mut o = (**st.orders.get(&id).unwrap()).clone();
        o.number = "  ".into();
        st.orders.insert(id, Arc::new(o));
    };
    let ids: Vec<i64> = w.mock.state().order_ids().to_vec();
    let bad = ids[ids.len() - 3]; // on the first page (newest first)
    strip_number(bad);
    let counts = w.sync_all().await;
    assert_eq!(counts.poison, 1, "{counts:?}");
    let dead = w.store.dead_records(PROJECT, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entity_id, Some(bad));
    assert_eq!(dead[0].stream, "orders");
    assert!(dead[0].reason.contains("number"), "{}", dead[0].reason);
    assert_eq!(dead[0].raw["id"], serde_json::json!(bad));
    let rows = w.orders().await;
    assert_eq!(rows.len(), ids.len() - 1, "every other order is written");
    assert!(rows.iter().all(|r| r.rid != bad));

    // In an incremental batch too: one bad order among changed ones.
    let bad2 = ids[40];
    let good = [ids[41], ids[42]];
    strip_number(bad2);
    {
        let mut st = w.mock.state();
        for id in [bad2, good[0], good[1]] {
            let code = if st.orders[&id].status == "complete" {
                "new"
            } else {
                "complete"
            };
            st.set_order_status(id, code, "user");
        }
    }
    let counts = w
        .run(JobSpec::Orders { since_id: None })
        .await
        .expect("sync");
    assert_eq!((counts.poison, counts.fetched), (1, 3), "{counts:?}");
    let dead = w.store.dead_records(PROJECT, 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().any(|d| d.entity_id == Some(bad2)));
    let rows = w.orders().await;
    for id in good {
        let r = rows.iter().find(|r| r.rid == id).unwrap();
        assert_eq!(
            r.retailcrm_status.as_deref(),
            Some(w.mock.state().orders[&id].status.as_str())
        );
    }
}
