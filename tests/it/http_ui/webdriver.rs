//! A small W3C WebDriver client for the browser tests: Debian's `chromedriver` driving its
//! `chromium` headless, spoken to with the crate's own `reqwest` (no browser download, no extra
//! dependency). `scripts/browser.sh` installs both; when they are missing the test fails and
//! says so, it never skips.
//!
//! The driver runs in its own process group, which is killed on drop, so a failing test leaves
//! no Chromium behind. Screenshots go to `target/browser-artifacts/` (also on a failed wait).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A found element.
#[derive(Debug, Clone)]
pub struct El(String);

/// A WebDriver error answer (`no such element`, `no such alert`, ...).
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

/// Where screenshots and driver logs go.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/browser-artifacts");
    dir
}

fn binary(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "\n\n*** BROWSER TEST CANNOT RUN: {} is missing. ***\n\
         Install Chromium and its WebDriver with `scripts/browser.sh` (Debian packages chromium \
         and chromium-driver; scripts/test.sh runs it), or point {var} at them.\n\
         This test fails instead of skipping, so CI cannot pass without a browser.\n",
        path.display()
    );
    path
}

/// One headless Chromium session.
pub struct Browser {
    driver: Option<Child>,
    http: reqwest::Client,
    session: String,
    name: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a Chromium session with a `width` x `height` window; `name`
    /// prefixes artefact files.
    pub async fn start(name: &str, width: u32, height: u32) -> Browser {
        let chromium = binary("RCS_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("RCS_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let log = artifacts_dir().join(format!("{name}-chromedriver.log"));
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let profile = tempfile::Builder::new()
            .prefix("rcs-chromium-")
            .tempdir()
            .expect("temp profile dir");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let mut browser = Browser {
            driver: Some(driver),
            http,
            session: String::new(),
            name: name.to_string(),
            _profile: profile,
        };
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .http
                .get(format!("{root}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready
                && body.await.ok().is_some_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer within 20 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-dev-shm-usage".into(),
            "--force-device-scale-factor=1".into(),
            "--lang=en-US".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "unhandledPromptBehavior": "ignore",
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": args,
                    }
                }
            }
        });
        let resp: Value = browser
            .http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("create a WebDriver session")
            .json()
            .await
            .expect("session answer");
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {resp}; see {}", log.display()));
        browser.session = format!("{root}/session/{id}");
        browser
    }

    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| WdError {
            error: "transport".into(),
            message: e.to_string(),
        })?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.map_err(|e| WdError {
            error: "bad answer".into(),
            message: e.to_string(),
        })?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(WdError {
                error: v["value"]["error"].as_str().unwrap_or("?").to_string(),
                message: v["value"]["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }

    async fn must(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.cmd(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {path}: {}: {}", e.error, e.message),
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.must(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<El> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .ok()?;
        v[ELEMENT_KEY].as_str().map(|s| El(s.to_string()))
    }

    /// Finds `css` and clicks it; the page re-renders itself every few hundred ms, so an
    /// element found a moment ago may be gone ("stale"): then it is found again (up to `limit`).
    pub async fn click_css(&self, css: &str, limit: Duration) {
        let started = std::time::Instant::now();
        loop {
            let el = self.wait_for(css, limit).await;
            match self
                .cmd(
                    reqwest::Method::POST,
                    &format!("/element/{}/click", el.0),
                    Some(json!({})),
                )
                .await
            {
                Ok(_) => return,
                Err(e) if e.error.contains("stale") && started.elapsed() < limit => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("WebDriver click on `{css}`: {}: {}", e.error, e.message),
            }
        }
    }

    /// Types `text` into `el`.
    pub async fn type_text(&self, el: &El, text: &str) {
        self.must(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Empties an input.
    pub async fn clear(&self, el: &El) {
        self.must(
            reqwest::Method::POST,
            &format!("/element/{}/clear", el.0),
            Some(json!({})),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The text of the open alert/confirm/prompt, if one is open.
    pub async fn alert_text(&self) -> Option<String> {
        match self.cmd(reqwest::Method::GET, "/alert/text", None).await {
            Ok(v) => Some(v.as_str().unwrap_or("").to_string()),
            Err(e) if e.error == "no such alert" => None,
            Err(e) => panic!("WebDriver alert/text: {}: {}", e.error, e.message),
        }
    }

    /// Resizes the window.
    pub async fn set_size(&self, width: u32, height: u32) {
        self.must(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves a PNG screenshot of the viewport as `target/browser-artifacts/<name>-<what>.png`.
    pub async fn screenshot(&self, what: &str) -> PathBuf {
        let b64 = self.must(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(b64.as_str().expect("base64 screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = artifacts_dir().join(format!("{}-{what}.png", self.name));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Polls `f` every 100 ms until it returns `Some`, for at most `limit`; on timeout saves a
    /// screenshot and panics with the page's text.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if started.elapsed() > limit {
                let slug: String = what
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .take(60)
                    .collect();
                let shot = self.screenshot(&format!("failed-{slug}")).await;
                let text = self.js("return document.body.innerText;", json!([])).await;
                let errors = self.js("return window.__rcsErrors || [];", json!([])).await;
                panic!(
                    "timed out after {limit:?} waiting for: {what}\nscreenshot: {}\npage errors: {errors}\npage text:\n{}",
                    shot.display(),
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an element matching `css`.
    pub async fn wait_for(&self, css: &str, limit: Duration) -> El {
        self.wait_until(&format!("an element `{css}`"), limit, async || {
            self.find(css).await
        })
        .await
    }

    /// Ends the session (Chromium exits) and stops the driver.
    pub async fn quit(mut self) {
        let _ = self.cmd(reqwest::Method::DELETE, "", None).await;
        self.stop_driver();
    }

    fn stop_driver(&mut self) {
        if let Some(mut child) = self.driver.take() {
            // The driver leads its own process group: this ends Chromium with it.
            let pgid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on the process group of our own child; no memory involved.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop_driver();
    }
}

/// Standard base64 (with padding, as WebDriver sends screenshots).
pub fn base64_decode(text: &str) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
    assert_eq!(base64_decode("AA=="), [0]);
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
