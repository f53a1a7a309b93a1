//! The API key never appears in an error (Display or Debug), in the client's Debug output, or
//! in any log line, even at TRACE level with every dependency's logs captured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retailcrm_sync::crm::{ClientOptions, CrmClient};
use retailcrm_sync::mock::{FaultConfig, MockConfig, MockCrm};
use retailcrm_sync::secret::ApiKey;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const KEY: &str = "SECRETkeyZZ9f3a8b7c6d5e4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_never_leaks() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber in this test binary");

    let m = MockCrm::start(MockConfig {
        orders: 30,
        customers: 10,
        api_key: KEY.to_string(),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let opts = ClientOptions {
        requests_per_second: 0.0,
        read_retries: 1,
        timeout: Duration::from_millis(300),
        rate_limit_budget: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let c = CrmClient::new(&m.url, ApiKey::new(KEY), opts.clone()).unwrap();
    let mut shown = vec![format!("{c:?}")];
    let mut record = |r: Result<String, retailcrm_sync::crm::CrmError>| match r {
        Ok(s) => shown.push(s),
        Err(e) => {
            shown.push(e.to_string());
            shown.push(format!("{e:?}"));
        }
    };
    // Successes, at TRACE, through the whole stack.
    record(
        c.orders_page(1, 20)
            .await
            .map(|p| format!("{:?}", p.items.len())),
    );
    record(
        c.create_order(&serde_json::json!({"email": "a@b.ru"}), None)
            .await
            .map(|id| id.to_string()),
    );
    // Every failure path.
    m.set_faults(FaultConfig {
        fail_rate: 1.0,
        ..FaultConfig::default()
    });
    record(c.orders_page(1, 20).await.map(|_| String::new()));
    m.set_faults(FaultConfig {
        truncate_rate: 1.0,
        ..FaultConfig::default()
    });
    record(c.customers_page(1, 20).await.map(|_| String::new()));
    m.set_faults(FaultConfig {
        slow_ms: 600,
        ..FaultConfig::default()
    });
    record(c.api_versions().await.map(|_| String::new()));
    m.set_faults(FaultConfig {
        rate_limit: Some(0.1),
        ..FaultConfig::default()
    });
    let _ = c.api_versions().await;
    record(c.api_versions().await.map(|_| String::new()));
    m.set_faults(FaultConfig::default());
    m.revoke_key();
    record(c.credentials().await.map(|_| String::new()));
    m.restore_key();
    m.set_account_exists(false);
    record(
        c.edit_order(1, &serde_json::json!({}), None)
            .await
            .map(|_| String::new()),
    );
    let url = m.url.clone();
    m.shutdown().await;
    record(c.api_versions().await.map(|_| String::new()));
    // Bad URLs and a key that cannot be a header.
    for bad in [
        "http://example.com",
        "https://x.retailcrm.ru/?apiKey=SECRETkeyZZ9f3a8b7c6d5e4",
    ] {
        if let Err(e) = CrmClient::new(bad, ApiKey::new(KEY), opts.clone()) {
            shown.push(format!("{e} {e:?}"));
        }
    }
    let _ = url;

    let logs = String::from_utf8_lossy(&buffer.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("retailcrm request"),
        "the client logged something: {logs}"
    );
    assert!(shown.len() >= 10);
    for s in &shown {
        assert!(!s.contains("SECRETkey"), "key leaked in: {s}");
    }
    assert!(!logs.contains("SECRETkey"), "key leaked in the logs");
}
