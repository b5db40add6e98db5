//! A real browser for the page tests: Debian's headless Chromium, driven through its
//! chromedriver over WebDriver (fantoccini), with a window the size of a phone or a desktop.
#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Browser {
    pub c: Client,
    driver: Child,
}

/// Screenshots the tests take, for a person to look at.
pub fn shots_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

impl Browser {
    /// Chromium with a `width` × `height` window (360 × 740: a phone).
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = super::daemon::free_port();
        let profile =
            std::env::temp_dir().join(format!("freecall-chromium-{}-{port}", std::process::id()));
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // The visitor is in Korea: the browser's own time zone (the booking form reads it).
            .env("TZ", "Asia/Seoul")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian: chromium-driver) is installed");
        let url = format!("http://127.0.0.1:{port}");
        let until = freecall::clock::Clock::system().now() + Duration::from_secs(20);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                    "--lang=en-US",
                ],
                "prefs": {"intl.accept_languages": "ko-KR,ko"}
            }),
        );
        let c = loop {
            let attempt =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url)
                    .await;
            match attempt {
                Ok(c) => break c,
                Err(e) if freecall::clock::Clock::system().now() > until => {
                    panic!("no browser session: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        c.set_window_size(width, height).await.expect("window size");
        Browser { c, driver }
    }

    pub async fn goto(&self, url: &str) {
        self.c
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let e = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        e.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Click `css` and wait until the next page has loaded (a form sent, a link followed).
    pub async fn submit(&self, css: &str) {
        let _ = self
            .c
            .execute("window.__freecall_old_page = true; return 1", vec![])
            .await;
        self.click(css).await;
        let until = freecall::clock::Clock::system().now() + Duration::from_secs(15);
        loop {
            let state = self
                .c
                .execute(
                    "return window.__freecall_old_page === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            if matches!(state, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            if freecall::clock::Clock::system().now() > until {
                panic!("no new page after clicking {css}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn select(&self, css: &str, value: &str) {
        let e = self
            .c
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        match self.c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The page's visible text.
    pub async fn body(&self) -> String {
        self.text("body").await
    }

    pub async fn path(&self) -> String {
        self.c
            .current_url()
            .await
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    }

    /// Wait until `css`'s text contains `want` (a page updated by its script); its text.
    pub async fn wait_text(&self, css: &str, want: &str, limit: Duration) -> String {
        let until = freecall::clock::Clock::system().now() + limit;
        loop {
            let t = self.text(css).await;
            if t.contains(want) || freecall::clock::Clock::system().now() > until {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Run `script` in the page; its JSON result.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.c
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script: {e}"))
    }

    pub async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.c.screenshot().await {
            let _ = std::fs::write(shots_dir().join(format!("{name}.png")), png);
        }
    }

    pub async fn stop(mut self) {
        let _ = self.c.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
