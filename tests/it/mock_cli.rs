//! `retailcrm-sync mock-crm` as a separate process: it prints its URL, serves the API to our
//! client, and is driven through `/admin/...`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use retailcrm_sync::crm::{ClientOptions, CrmClient, CrmError};
use retailcrm_sync::model::Stream;
use retailcrm_sync::secret::ApiKey;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_mock_serves_and_mutates() {
    let key = "cli-test-key-0123456789";
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
                "--seed",
                "3",
                "--api-key",
                key,
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
    assert!(!line.contains(key), "the key is not printed");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();

    let opts = ClientOptions {
        requests_per_second: 0.0,
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    let c = CrmClient::new(&url, ApiKey::new(key), opts).unwrap();
    let page = c.orders_page(1, 50).await.unwrap();
    assert!(
        page.items.len() >= 39,
        "40 orders minus generated deletions"
    );
    let before = c.latest_history_id(Stream::Orders).await.unwrap().unwrap();

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/admin/mutate?n=25&seed=4"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let after = c.latest_history_id(Stream::Orders).await.unwrap().unwrap();
    let customers_after = c.latest_history_id(Stream::Customers).await.unwrap();
    assert!(after > before || customers_after.is_some());

    let stats: serde_json::Value = http
        .get(format!("{url}/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["stats"]["requests"].as_u64().unwrap() >= 3);

    http.post(format!("{url}/admin/revoke-key"))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        c.credentials().await.unwrap_err(),
        CrmError::InvalidKey { .. }
    ));
}
