//! `retailcrm-sync integration test`: the seed's "test connection", against the mock RetailCRM
//! and a real Postgres. A good key passes; a revoked key and a missing scope fail with a reason.

use crate::common;

use std::process::{Command, Output};

use common::pg::TestDb;
use retailcrm_sync::mock::{MockConfig, MockCrm};
use retailcrm_sync::secret::ApiKey;
use retailcrm_sync::store::NewIntegration;

fn run(db: &TestDb, project: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(["integration", "test", "--project-id", project])
        .env("RETAILCRM_SYNC__DATABASE__URL", &db.url)
        .env_remove("RETAILCRM_SYNC_CONFIG")
        .output()
        .expect("run the binary")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_test_reports_key_and_scope_problems() {
    let db = TestDb::new().await;
    let mock = MockCrm::start(MockConfig::default()).await.expect("mock");
    let store = db.store().await;
    store
        .upsert_integration(&NewIntegration {
            project_id: 7,
            project_name: Some("Shop".into()),
            api_url: mock.url.clone(),
            api_key: ApiKey::new(mock.api_key.clone()),
            is_active: true,
            sync_orders: true,
            sync_customers: true,
            sync_interval_minutes: 60,
            status_mapping: Default::default(),
            orders_created_from: None,
            default_phone_country: None,
        })
        .await
        .expect("integration");

    let ok = tokio::task::block_in_place(|| run(&db, "7"));
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("API v5"), "{}", text(&ok));
    assert!(
        !text(&ok).contains(&mock.api_key),
        "key leaked: {}",
        text(&ok)
    );

    mock.set_scopes(&["order_read", "reference_read"]);
    let scope = tokio::task::block_in_place(|| run(&db, "7"));
    assert!(!scope.status.success());
    assert!(text(&scope).contains("customer_read"), "{}", text(&scope));

    mock.revoke_key();
    let revoked = tokio::task::block_in_place(|| run(&db, "7"));
    assert!(!revoked.status.success());
    assert!(
        text(&revoked).to_lowercase().contains("key"),
        "{}",
        text(&revoked)
    );
    assert!(
        !text(&revoked).contains(&mock.api_key),
        "key leaked: {}",
        text(&revoked)
    );

    let missing = tokio::task::block_in_place(|| run(&db, "8"));
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no integration"),
        "{}",
        text(&missing)
    );
    mock.shutdown().await;
}
