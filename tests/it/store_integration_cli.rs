//! `retailcrm-sync integration ...` end to end against a real Postgres: the key goes in through
//! stdin or a file and never comes out; bad URLs and mappings are refused.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::pg::TestDb;

const KEY: &str = "TopSecretKey-0123456789";

fn run(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(args)
        .env("RETAILCRM_SYNC__DATABASE__URL", &db.url)
        .env_remove("RETAILCRM_SYNC_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn add_list_set_remove() {
    let db = TestDb::new().await;
    let add = run(
        &db,
        &[
            "integration",
            "add",
            "--project-id",
            "5",
            "--project-name",
            "Shop",
            "--api-url",
            "https://shop.retailcrm.ru/",
            "--status-mapping",
            r#"{"paid":"confirmed"}"#,
        ],
        &format!("{KEY}\n"),
    );
    assert!(add.status.success(), "{}", text(&add));
    assert!(!text(&add).contains(KEY));

    let keyfile = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keyfile.path(), "OtherSecretKey-987654321\n").unwrap();
    let add2 = run(
        &db,
        &[
            "integration",
            "add",
            "--project-id",
            "6",
            "--api-url",
            "http://127.0.0.1:8080",
            "--api-key-file",
            keyfile.path().to_str().unwrap(),
            "--inactive",
            "--no-customers",
        ],
        "",
    );
    assert!(add2.status.success(), "{}", text(&add2));

    let list = run(&db, &["integration", "list", "--json"], "");
    assert!(list.status.success(), "{}", text(&list));
    let out = text(&list);
    assert!(
        !out.contains(KEY) && !out.contains("OtherSecretKey"),
        "{out}"
    );
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["project_id"], 5);
    assert_eq!(rows[0]["api_url"], "https://shop.retailcrm.ru");
    assert_eq!(rows[0]["api_key"], "****6789");
    assert_eq!(rows[0]["status_mapping"]["paid"], "CONFIRMED");
    assert_eq!(
        (
            rows[1]["is_active"].as_bool(),
            rows[1]["sync_customers"].as_bool()
        ),
        (Some(false), Some(false))
    );

    let set = run(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "6",
            "--active",
            "true",
            "--interval-minutes",
            "10",
        ],
        "",
    );
    assert!(set.status.success(), "{}", text(&set));
    let store = db.store().await;
    let six = store.get_integration(6).await.unwrap().unwrap();
    assert!(six.is_active);
    assert_eq!(six.sync_interval_minutes, 10);
    assert_eq!(six.api_key.expose(), "OtherSecretKey-987654321");

    // The orders date filter: set, shown by `list --json`, removed with `all`, refused when
    // it is not a date (and nothing changes).
    let from = |args: &[&str]| {
        run(
            &db,
            &[&["integration", "set", "--project-id", "6"], args].concat(),
            "",
        )
    };
    let o = from(&["--orders-from", "2025-03-01"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed = run(&db, &["integration", "list", "--json"], "");
    assert!(
        text(&listed).contains("\"orders_created_from\": \"2025-03-01\""),
        "{}",
        text(&listed)
    );
    let o = from(&["--orders-from", "March"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("YYYY-MM-DD"), "{}", text(&o));
    let filtered = store.get_integration(6).await.unwrap().unwrap();
    assert_eq!(filtered.orders_created_from, "2025-03-01".parse().ok());
    let o = from(&["--orders-from", "all"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        store
            .get_integration(6)
            .await
            .unwrap()
            .unwrap()
            .orders_created_from,
        None
    );

    let set_key = run(
        &db,
        &["integration", "set", "--project-id", "6", "--api-key-stdin"],
        "NewKey-abcdefghijklmnop\n",
    );
    assert!(set_key.status.success(), "{}", text(&set_key));
    assert_eq!(
        store
            .get_integration(6)
            .await
            .unwrap()
            .unwrap()
            .api_key
            .expose(),
        "NewKey-abcdefghijklmnop"
    );

    for bad in [
        vec![
            "integration",
            "add",
            "--project-id",
            "7",
            "--api-url",
            "http://shop.retailcrm.ru",
        ],
        vec![
            "integration",
            "add",
            "--project-id",
            "7",
            "--api-url",
            "https://a.ru",
            "--status-mapping",
            r#"{"x":"SENT"}"#,
        ],
        vec![
            "integration",
            "set",
            "--project-id",
            "99",
            "--active",
            "false",
        ],
        vec!["integration", "remove", "--project-id", "99"],
    ] {
        let o = run(&db, &bad, "SomeKeyThatIsLongEnough\n");
        assert!(!o.status.success(), "{bad:?} should fail: {}", text(&o));
    }
    assert!(store.get_integration(7).await.unwrap().is_none());
    let empty_key = run(
        &db,
        &[
            "integration",
            "add",
            "--project-id",
            "8",
            "--api-url",
            "https://a.ru",
        ],
        "  \n",
    );
    assert!(!empty_key.status.success());

    let rm = run(&db, &["integration", "remove", "--project-id", "5"], "");
    assert!(rm.status.success(), "{}", text(&rm));
    assert_eq!(store.list_integrations().await.unwrap().len(), 1);
}

fn run_env(db: &TestDb, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_retailcrm-sync"))
        .args(args)
        .env("RETAILCRM_SYNC__DATABASE__URL", &db.url)
        .env_remove("RETAILCRM_SYNC_CONFIG")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

async fn stored_hash(db: &TestDb, project_id: i64) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        h: Option<String>,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = db.conn().await;
    let rows: Vec<Row> = diesel::sql_query(format!(
        "SELECT webhook_token_sha256 AS h FROM retailcrm_integrations WHERE project_id = {project_id}"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().next().and_then(|r| r.h)
}

/// `integration set --webhook-token generate` prints the secret once with the URL and the
/// trigger settings, stores only its hash; `list` says set / not set, never the value;
/// `--webhook-token-file` takes a given one; `none` removes it.
#[tokio::test]
async fn webhook_token_generate_file_and_none() {
    let db = TestDb::new().await;
    let add = run(
        &db,
        &[
            "integration",
            "add",
            "--project-id",
            "7",
            "--api-url",
            "https://shop.retailcrm.ru/",
        ],
        &format!("{KEY}\n"),
    );
    assert!(add.status.success(), "{}", text(&add));
    let list = |json: bool| {
        let mut args = vec!["integration", "list"];
        if json {
            args.push("--json");
        }
        text(&run_env(&db, &args, &[]))
    };
    assert!(list(false).contains("webhook not set"), "{}", list(false));

    let set = run_env(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "7",
            "--webhook-token",
            "generate",
        ],
        &[(
            "RETAILCRM_SYNC__HTTP__PUBLIC_URL",
            "https://sync.example.com/",
        )],
    );
    let out = text(&set);
    assert!(set.status.success(), "{out}");
    let url_start = out
        .find("https://sync.example.com/webhooks/retailcrm/7?token=")
        .unwrap_or_else(|| panic!("the URL is printed: {out}"));
    let token: String = out[url_start..]
        .split("token=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 64, "{out}");
    assert!(
        out.contains("order_id = {{ order.id }}"),
        "trigger settings: {out}"
    );
    assert!(out.contains("Customer changed"), "{out}");
    assert_eq!(
        stored_hash(&db, 7).await.as_deref(),
        Some(retailcrm_sync::http::webhook_token_hash(&token).as_str()),
        "only the hash is stored"
    );
    assert!(list(false).contains("webhook set"));
    assert!(!list(false).contains(&token) && !list(true).contains(&token));
    assert!(
        list(true).contains(r#""webhook_token": "set""#),
        "{}",
        list(true)
    );

    // A loopback listener without public_url: the URL is printed with a warning.
    let again = run_env(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "7",
            "--webhook-token",
            "generate",
        ],
        &[],
    );
    let out = text(&again);
    assert!(
        out.contains("http://127.0.0.1:9860/webhooks/retailcrm/7?token="),
        "{out}"
    );
    assert!(out.contains("cannot reach"), "{out}");
    assert_ne!(
        stored_hash(&db, 7).await.as_deref(),
        Some(retailcrm_sync::http::webhook_token_hash(&token).as_str()),
        "a new secret replaces the old"
    );

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let refused = run_env(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "7",
            "--webhook-token-file",
            short.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!refused.status.success());
    assert!(text(&refused).contains("at least 16"), "{}", text(&refused));
    let given = dir.path().join("given");
    std::fs::write(&given, "my-own-secret-0123456789\n").unwrap();
    let ok = run_env(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "7",
            "--webhook-token-file",
            given.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        !text(&ok).contains("shown this once"),
        "a given secret is not echoed as generated"
    );
    assert_eq!(
        stored_hash(&db, 7).await.as_deref(),
        Some(retailcrm_sync::http::webhook_token_hash("my-own-secret-0123456789").as_str())
    );

    let none = run_env(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "7",
            "--webhook-token",
            "none",
        ],
        &[],
    );
    assert!(none.status.success(), "{}", text(&none));
    assert_eq!(stored_hash(&db, 7).await, None);
    assert!(list(false).contains("webhook not set"));
    let bad = run_env(
        &db,
        &[
            "integration",
            "set",
            "--project-id",
            "7",
            "--webhook-token",
            "maybe",
        ],
        &[],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("generate"), "{}", text(&bad));
}
