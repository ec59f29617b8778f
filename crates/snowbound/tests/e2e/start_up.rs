//! What a node refuses at start-up, and what it says: settings that break the lease
//! rule, a corrupt or missing key file, a data directory it cannot write. A refused
//! start writes nothing.

use std::path::Path;
use std::process::{Command, Stdio};

use snowbound::App;
use snowbound_emulator::{Emulator, EmulatorConfig};
use snowbound_testkit::Backend;
use snowbound_testkit::{test_config, TestApp};

async fn refusal(config: snowbound::ServeConfig) -> String {
    match App::start(config).await {
        Ok(_) => panic!("the node started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_lease_too_short_for_one_call_is_refused_naming_both_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    config.servicenow_timeout_ms = 5_000;
    config.lease_ms = 5_000;
    let error = refusal(config).await;
    assert!(error.contains("SNOWBOUND_LEASE_MS=5000"), "{error}");
    assert!(
        error.contains("SNOWBOUND_SERVICENOW_TIMEOUT_MS=5000"),
        "{error}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[tokio::test]
async fn the_binary_refuses_a_lease_too_short_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_snowbound"))
        .arg("serve")
        .env("SNOWBOUND_LISTEN", "127.0.0.1:0")
        .env("SNOWBOUND_DATA_DIR", dir.path())
        .env("SNOWBOUND_LEASE_MS", "7000")
        .env("SNOWBOUND_SERVICENOW_TIMEOUT_MS", "30000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SNOWBOUND_LEASE_MS=7000"), "{stderr}");
    assert!(
        stderr.contains("SNOWBOUND_SERVICENOW_TIMEOUT_MS=30000"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_truthy_no_migrate_is_accepted_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["1", "yes", "on", "0", "off"] {
        // `migrate` parses the same settings as `serve` and exits.
        let output = Command::new(env!("CARGO_BIN_EXE_snowbound"))
            .arg("migrate")
            .env("SNOWBOUND_DATA_DIR", dir.path())
            .env("SNOWBOUND_NO_MIGRATE", value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "SNOWBOUND_NO_MIGRATE={value}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn an_empty_or_corrupt_key_file_is_named() {
    for content in ["", "not a key\n"] {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("secret.key");
        std::fs::write(&key_file, content).unwrap();
        let error = refusal(test_config(&dir)).await;
        assert!(error.contains(&key_file.display().to_string()), "{error}");
        assert!(error.contains("empty or corrupt"), "{error}");
        assert_eq!(std::fs::read_to_string(&key_file).unwrap(), content);
    }
}

#[tokio::test]
async fn a_deleted_key_file_refuses_the_start_and_writes_no_new_one() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    // A secret sealed with the first key.
    let team = t.team("core").await;
    t.integration(team, "always", serde_json::json!({})).await;
    let config = {
        let mut c = test_config(&t.dir);
        c.admin_token = Some(snowbound_testkit::ADMIN_TOKEN.into());
        c
    };
    let TestApp { app, dir, .. } = t;
    app.unwrap().shutdown().await;
    let key_file = dir.path().join("secret.key");
    std::fs::remove_file(&key_file).unwrap();

    let error = refusal(config).await;
    assert!(error.contains(&key_file.display().to_string()), "{error}");
    assert!(error.contains("no new key file was written"), "{error}");
    assert!(!key_file.exists(), "a refused start wrote a key file");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("key"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_first_start_keeps_its_new_key_file() {
    let _emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(test_config(&dir)).await.unwrap();
    app.shutdown().await;
    let key_file = dir.path().join("secret.key");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // And the next start uses it.
    App::start(test_config(&dir))
        .await
        .unwrap()
        .shutdown()
        .await;
}

/// Makes `dir` unwritable even for root (whom permissions do not stop); false when
/// this system offers no way to.
fn make_read_only(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let writable = |dir: &Path| {
        let probe = dir.join("probe");
        let ok = std::fs::write(&probe, b"").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    };
    if !writable(dir) {
        return true;
    }
    let immutable = Command::new("chattr").arg("+i").arg(dir).status();
    immutable.is_ok_and(|s| s.success()) && !writable(dir)
}

fn undo_read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = Command::new("chattr")
        .arg("-i")
        .arg(dir)
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[tokio::test]
async fn a_read_only_data_directory_says_so() {
    let dir = tempfile::tempdir().unwrap();
    if !make_read_only(dir.path()) {
        eprintln!("skipped: this system cannot make a directory read-only for this user");
        return;
    }
    let error = refusal(test_config(&dir)).await;
    undo_read_only(dir.path());
    assert!(error.contains("is not writable"), "{error}");
    assert!(error.contains(&dir.path().display().to_string()), "{error}");
}
