//! Integrations, runs and dead records against a real Postgres.

use crate::common;

use std::collections::HashMap;

use common::pg::TestDb;
use diesel_async::RunQueryDsl;
use retailcrm_sync::model::{OrderStatus, Stream};
use retailcrm_sync::secret::ApiKey;
use retailcrm_sync::store::{
    Cursor, IntegrationPatch, NewIntegration, PoisonRecord, RunOutcome, StoreError,
};

fn new_integration(project_id: i64) -> NewIntegration {
    NewIntegration {
        project_id,
        project_name: Some(format!("shop {project_id}")),
        api_url: "https://shop.retailcrm.ru".into(),
        api_key: ApiKey::new("secret-key-0123456789"),
        is_active: true,
        sync_orders: true,
        sync_customers: false,
        sync_interval_minutes: 30,
        status_mapping: HashMap::from([("paid".to_string(), OrderStatus::Confirmed)]),
        orders_created_from: None,
        default_phone_country: None,
    }
}

#[tokio::test]
async fn integrations_round_trip() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let a = store.upsert_integration(&new_integration(1)).await.unwrap();
    assert_eq!(a.project_name.as_deref(), Some("shop 1"));
    assert_eq!(a.api_key.expose(), "secret-key-0123456789");
    assert_eq!(a.status_mapping.get("paid"), Some(&OrderStatus::Confirmed));
    assert!(!a.sync_customers);
    store.upsert_integration(&new_integration(2)).await.unwrap();
    let b = store
        .update_integration(
            2,
            &IntegrationPatch {
                is_active: Some(false),
                sync_interval_minutes: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!b.is_active);
    assert_eq!(b.sync_interval_minutes, 5);
    assert_eq!(
        b.api_url, "https://shop.retailcrm.ru",
        "untouched fields stay"
    );
    let active: Vec<i64> = store
        .list_active_integrations()
        .await
        .unwrap()
        .iter()
        .map(|i| i.project_id)
        .collect();
    assert_eq!(active, [1]);
    assert_eq!(store.list_integrations().await.unwrap().len(), 2);
    assert!(matches!(
        store
            .update_integration(
                9,
                &IntegrationPatch {
                    is_active: Some(true),
                    ..Default::default()
                }
            )
            .await,
        Err(StoreError::IntegrationNotFound(9))
    ));
    assert!(store.remove_integration(2).await.unwrap());
    assert!(!store.remove_integration(2).await.unwrap());
    assert!(store.get_integration(2).await.unwrap().is_none());

    // A bad mapping written by the platform is reported, not fatal.
    let mut conn = db.conn().await;
    diesel::sql_query(r#"UPDATE retailcrm_integrations SET status_mapping = '{"x": "SENT", "y": 5, "z": "shipped"}' WHERE project_id = 1"#)
        .execute(&mut conn)
        .await
        .unwrap();
    let a = store.get_integration(1).await.unwrap().unwrap();
    assert_eq!(
        a.status_mapping,
        HashMap::from([("z".to_string(), OrderStatus::Shipped)])
    );
    assert_eq!(
        a.status_mapping_errors.len(),
        2,
        "{:?}",
        a.status_mapping_errors
    );
    assert!(
        !format!("{a:?}").contains("secret-key"),
        "Debug must not show the key"
    );
}

#[tokio::test]
async fn runs_record_outcomes_and_last_sync() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store.upsert_integration(&new_integration(1)).await.unwrap();
    let r1 = store
        .start_run(1, "job-1", "sync_orders", "schedule")
        .await
        .unwrap();
    store
        .finish_run(
            r1,
            RunOutcome::Failed,
            &serde_json::json!({"orders": 3}),
            Some("boom"),
        )
        .await
        .unwrap();
    assert!(
        store
            .get_integration(1)
            .await
            .unwrap()
            .unwrap()
            .last_sync_at
            .is_none()
    );
    assert!(store.last_success(1).await.unwrap().is_none());
    let r2 = store
        .start_run(1, "job-2", "sync_orders", "manual")
        .await
        .unwrap();
    store
        .finish_run(
            r2,
            RunOutcome::Succeeded,
            &serde_json::json!({"orders": 5}),
            None,
        )
        .await
        .unwrap();
    assert!(
        store
            .get_integration(1)
            .await
            .unwrap()
            .unwrap()
            .last_sync_at
            .is_some()
    );
    let last = store.last_success(1).await.unwrap().unwrap();
    assert_eq!(
        (last.id, last.job_id.as_str(), last.outcome.as_str()),
        (r2, "job-2", "succeeded")
    );
    assert_eq!(last.counts, serde_json::json!({"orders": 5}));
    let recent = store.recent_runs(1, 10).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[1].error.as_deref(), Some("boom"));
    assert!(
        store
            .finish_run(9999, RunOutcome::Cancelled, &serde_json::json!({}), None)
            .await
            .is_err()
    );
}

/// A run left `running` by a daemon that died (kill -9: nobody finished it) is closed as
/// `abandoned` when the project's next run starts; other projects' runs are left alone.
#[tokio::test]
async fn a_run_left_running_is_closed_as_abandoned_by_the_next_run() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store.upsert_integration(&new_integration(1)).await.unwrap();
    store.upsert_integration(&new_integration(2)).await.unwrap();
    let dead = store
        .start_run(1, "job-1", "sync_all", "schedule")
        .await
        .unwrap();
    let other = store
        .start_run(2, "job-9", "sync_all", "schedule")
        .await
        .unwrap();
    // The daemon running job-1 was killed; the job is reclaimed and runs again.
    let again = store
        .start_run(1, "job-1", "sync_all", "schedule")
        .await
        .unwrap();
    let runs = store.recent_runs(1, 10).await.unwrap();
    let old = runs.iter().find(|r| r.id == dead).unwrap();
    assert_eq!(old.outcome, "abandoned");
    assert!(old.finished_at.is_some());
    assert!(
        old.error.as_deref().unwrap().contains("ran again"),
        "{old:?}"
    );
    let new = runs.iter().find(|r| r.id == again).unwrap();
    assert_eq!((new.outcome.as_str(), new.finished_at), ("running", None));
    let untouched = store.recent_runs(2, 10).await.unwrap();
    assert_eq!(untouched[0].id, other);
    assert_eq!(untouched[0].outcome, "running");
}

#[tokio::test]
async fn poison_is_stored_with_the_batch() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store.upsert_integration(&new_integration(1)).await.unwrap();
    let poison = PoisonRecord {
        stream: Stream::Customers,
        entity_id: Some(77),
        raw: serde_json::json!({"id": 77, "email": 5}),
        reason: "email is not a string".into(),
    };
    let c0 = Cursor::default();
    let next = Cursor {
        since_id: Some(3),
        snapshot_page: Some(4),
        snapshot_total: Some(1234),
        snapshot_from: Some("2026-05-01 10:00:00".into()),
        snapshot_job: Some("job-1".into()),
        snapshot_until: Some("2026-05-01 09:00:00".into()),
        version: 0,
    };
    let out = store
        .commit_customers(1, &c0, &next, &[], &[], &[poison])
        .await
        .unwrap();
    assert_eq!(
        out.cursor,
        Cursor {
            since_id: Some(3),
            snapshot_page: Some(4),
            snapshot_total: Some(1234),
            snapshot_from: Some("2026-05-01 10:00:00".into()),
            snapshot_job: Some("job-1".into()),
            snapshot_until: Some("2026-05-01 09:00:00".into()),
            version: 1
        }
    );
    assert_eq!(
        store.load_cursor(1, Stream::Customers).await.unwrap(),
        out.cursor,
        "the whole cursor, page and count included, is stored"
    );
    let dead = store.dead_records(1, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].stream.as_str(), dead[0].entity_id),
        ("customers", Some(77))
    );
    assert_eq!(dead[0].raw["email"], 5);
}
