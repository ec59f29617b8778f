//! The web UI in a real browser: headless Chromium, driven over WebDriver, against the
//! running server and the ServiceNow emulator. One journey, the way an admin and an
//! on-call engineer use it; screenshots of each screen land in docs/screenshots/.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::Backend;
use snowbound_testkit::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver as a child process, killed when the test ends however it ends.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMIUM).exists() && on_path("chromedriver"),
        "the browser tests need Debian's chromium and chromium-driver; .ci/run installs them \
         (apt-get install -y chromium chromium-driver)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let profile = driver._profile.path().display().to_string();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={profile}"), "--window-size=1280,900"],
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// Every run saves its screenshots under target/; `SNOWBOUND_UPDATE_SCREENSHOTS=1`
/// writes them over the README's copies in docs/screenshots instead, so an ordinary
/// test run never dirties the work tree (timestamps differ on every run).
fn screenshot_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = if std::env::var_os("SNOWBOUND_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the whole page at `width`, then back to the laptop window.
async fn shot(c: &Client, name: &str, width: u32) {
    c.set_window_size(width, 900).await.unwrap();
    c.execute(
        "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);",
        vec![],
    )
    .await
    .unwrap();
    let height = c
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(900)
        .clamp(600, 5000) as u32;
    c.set_window_size(width, height + 20).await.unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    c.set_window_size(1280, 900).await.unwrap();
}

async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(selector))
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let url = c
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let html = c.source().await.unwrap_or_default();
            panic!("no `{selector}` on {url}: {e}\n{html}")
        }
    }
}

async fn fill(c: &Client, selector: &str, text: &str) {
    let input = css(c, selector).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn text_of(c: &Client, selector: &str) -> String {
    // Right after a click the page being left can still answer: a stale element is
    // read again from the new page.
    let deadline = Instant::now() + WAIT;
    loop {
        match css(c, selector).await.text().await {
            Ok(text) => return text,
            Err(e) if Instant::now() >= deadline => panic!("reading `{selector}`: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn wait_for_text(c: &Client, selector: &str, wanted: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        // The element may belong to the page a click is just leaving (stale): look again.
        let text = css(c, selector).await.text().await.unwrap_or_default();
        if text.contains(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{selector}` never said `{wanted}`: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn from_login_to_a_resolved_servicenow_incident() {
    let driver = start_driver();
    let t = TestApp::spawn_with(Backend::Sqlite, EmulatorConfig::default(), with_admin).await;
    let team = t.team("Payments").await;
    let incident = t
        .incident(team, "Checkout latency above 2 s", "critical")
        .await;
    t.incident(team, "Disk 91% full on db-2", "warning").await;
    let c = browser(&driver).await;
    journey(&c, &t, incident).await;
    c.close().await.unwrap();
}

async fn journey(c: &Client, t: &TestApp, incident: uuid::Uuid) {
    // Login.
    c.goto(&t.base).await.unwrap();
    css(c, "#email").await;
    shot(c, "01-login", 1280).await;
    fill(c, "#email", ADMIN_EMAIL).await;
    fill(c, "#password", ADMIN_PASSWORD).await;
    css(c, "button[type=submit].primary")
        .await
        .click()
        .await
        .unwrap();
    css(c, "h1").await;
    wait_for_text(c, "h1", "Incidents").await;

    // Outbound Integrations → + Create.
    css(c, "a[href='/integrations']")
        .await
        .click()
        .await
        .unwrap();
    css(c, "#create-integration").await.click().await.unwrap();
    fill(c, "#display_name", "ServiceNow").await;
    fill(c, "#instance_url", &t.emulator.base_url()).await;
    fill(c, "#username", "admin").await;
    fill(c, "#password", "admin").await;
    assert!(css(c, "input[value=always_after_forwarding]")
        .await
        .is_selected()
        .await
        .unwrap());
    shot(c, "02-create-integration", 1280).await;
    css(c, "#create").await.click().await.unwrap();

    // ServiceNow Settings: Test Connection (in place, by the script), then mappings
    // picked from dropdowns filled from sys_choice.
    wait_for_text(c, ".notice", "Created.").await;
    css(c, "#test-connection").await.click().await.unwrap();
    wait_for_text(c, "#test-results", "Connection works").await;
    assert!(text_of(c, "#test-results")
        .await
        .contains("Credentials accepted"));
    css(c, "#reload-choices").await.click().await.unwrap();
    wait_for_text(c, "#choices-status", "Choice lists reloaded.").await;
    css(c, "#state_resolved")
        .await
        .select_by_label("Resolved (6)")
        .await
        .unwrap();
    css(c, "#close_code")
        .await
        .select_by_label("Resolved by caller (Resolved by caller)")
        .await
        .unwrap();
    assert!(
        !css(c, "#secondary_field")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "toggle off"
    );
    css(c, "#secondary_enabled").await.click().await.unwrap();
    assert!(
        css(c, "#secondary_field")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "toggle on"
    );
    css(c, "#secondary_warning")
        .await
        .select_by_label("3 - Low (3)")
        .await
        .unwrap();
    shot(c, "03-settings-test-connection", 1280).await;
    css(c, "#save-mappings").await.click().await.unwrap();
    wait_for_text(c, ".notice", "Saved.").await;
    let id = c
        .current_url()
        .await
        .unwrap()
        .path()
        .split('/')
        .nth(2)
        .unwrap()
        .to_owned();
    let stored = t.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(stored["servicenow"]["close_code"], "Resolved by caller");
    assert_eq!(
        stored["servicenow"]["severity"]["secondary_map"]["warning"],
        "3"
    );
    css(c, "a[href='/integrations']")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(c, "table.list", "Always After Forwarding").await;
    shot(c, "04-integrations", 1280).await;

    // Incidents → the incident → Forward to… → its ServiceNow number.
    css(c, "a[href='/incidents']").await.click().await.unwrap();
    shot(c, "05-incidents", 1280).await;
    c.find(Locator::LinkText("Checkout latency above 2 s"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    css(c, "#forward").await.click().await.unwrap();
    wait_for_text(c, ".notice", "Forwarded").await;
    t.wait_synced(incident).await;
    c.refresh().await.unwrap();
    let number = text_of(c, ".sn-number a").await;
    let record = t.record(incident).expect("a ServiceNow record");
    assert_eq!(number, record["number"]);
    let href = css(c, ".sn-number a")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        href,
        format!(
            "{}/nav_to.do?uri=incident.do?sys_id={}",
            t.emulator.base_url(),
            record["sys_id"]
        )
    );
    assert_eq!(
        (record["urgency"].as_str(), record["impact"].as_str()),
        ("1", "1")
    );

    // Resolve with a comment: ServiceNow gets it as close notes.
    fill(c, "#comment", "Rolled back deploy 4711.").await;
    css(c, "#resolve").await.click().await.unwrap();
    wait_for_text(c, "#incident-status", "resolved").await;
    t.wait_synced(incident).await;
    let record = t.record(incident).unwrap();
    assert_eq!(record["close_notes"], "Rolled back deploy 4711.");
    assert_eq!(
        (record["state"].as_str(), record["close_code"].as_str()),
        ("6", "Resolved by caller")
    );
    c.refresh().await.unwrap();
    wait_for_text(c, ".sn-number", &number).await;
    shot(c, "06-incident-detail", 1280).await;
    shot(c, "08-incident-phone", 390).await;

    // The API call log at the bottom of the settings page, one call opened.
    c.goto(&format!("{}/integrations/{id}/settings", t.base))
        .await
        .unwrap();
    css(c, "#api-calls details.call summary")
        .await
        .click()
        .await
        .unwrap();
    let log = text_of(c, "#api-calls").await;
    assert!(log.contains("PATCH") && log.contains("POST"), "{log}");
    assert!(
        log.contains("Rolled back deploy 4711."),
        "request bodies are shown"
    );
    c.execute(
        "document.getElementById('api-calls').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    let png = css(c, "#api-calls").await.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join("07-api-calls.png"), png).unwrap();

    // Teams → Sources: a new Alertmanager source and its ingest URL; → Routing rules:
    // a rule in words.
    css(c, "a[href='/teams']").await.click().await.unwrap();
    css(c, "a[href$='/sources']").await.click().await.unwrap();
    fill(c, "#name", "prod alertmanager").await;
    fill(c, "#severity_map", "page=critical\nticket=warning").await;
    css(c, "form[action$='/sources'] button.primary")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(c, ".notice", "Created.").await;
    let url = css(c, "input.copy")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(url.starts_with(&format!("{}/ingest/sbi_", t.base)), "{url}");
    shot(c, "09-sources", 1280).await;
    // Edit it: a new name and one more severity word.
    css(c, "td.actions details summary")
        .await
        .click()
        .await
        .unwrap();
    fill(c, "input[id^='name-']", "prod alertmanager (eu)").await;
    fill(
        c,
        "textarea[id^='severity_map-']",
        "page=critical\nticket=warning\nlow=minor",
    )
    .await;
    css(c, "form[action$='/edit'] button")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(c, ".notice", "Saved.").await;
    wait_for_text(c, "table.list", "prod alertmanager (eu)").await;
    wait_for_text(c, "table.list", "low → minor").await;
    css(c, "a[href='/teams']").await.click().await.unwrap();
    css(c, "a[href$='/rules']").await.click().await.unwrap();
    fill(c, "#name", "Criticals in prod to ServiceNow").await;
    css(c, "input[name=severity][value=critical]")
        .await
        .click()
        .await
        .unwrap();
    fill(c, "#attributes", "env=prod").await;
    css(c, &format!("input[name=forward_to][value='{id}']"))
        .await
        .click()
        .await
        .unwrap();
    css(c, "form[action$='/rules'] button.primary")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(
        c,
        "ol.rules",
        "When severity is critical and env = prod → forward to ServiceNow",
    )
    .await;
    shot(c, "10-rules", 1280).await;
    // Edit the rule's conditions in place: warnings too.
    css(c, "details.edit-rule summary")
        .await
        .click()
        .await
        .unwrap();
    fill(
        c,
        "textarea[id^='edit-when-']",
        r#"{"severity": ["critical", "warning"], "attributes": {"env": "prod"}}"#,
    )
    .await;
    css(c, "form[action$='/edit'] button")
        .await
        .click()
        .await
        .unwrap();
    wait_for_text(c, ".notice", "Saved.").await;
    wait_for_text(c, "ol.rules", "critical or warning").await;
}
