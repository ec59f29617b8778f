//! Guessing passwords is slow: ten wrong ones for an account, or fifty from one address,
//! and logins wait — even with the right password — for a time that grows. Nobody is
//! locked out for good: the admin token, the Users page or a restart with
//! `--reset-login-limits` ends the wait.

use reqwest::{Method, StatusCode};
use serde_json::json;
use snowbound::App;
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, Page, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::{on_both_backends, start_when_free, test_config, Backend, TestApp};

on_both_backends!(
    ten_wrong_passwords_lock_an_account_and_the_right_one_then_still_waits,
    one_address_guessing_many_accounts_waits_until_the_admin_token_ends_it,
    an_admin_changes_a_users_teams_and_role_in_the_browser_and_the_api
);

const BOB: &str = "bob@example.com";
const BOB_PASSWORD: &str = "bobs long password";

async fn try_login(email: &str, password: &str, ui: &mut Ui) -> Page {
    ui.submit(
        "/login",
        "/login",
        &[("email", email), ("password", password)],
    )
    .await
}

/// The page says to wait about `seconds` (a lock read a moment after it was set has a
/// little less to go; a loaded machine may take several seconds between the two).
fn assert_waits(page: &Page, seconds: &str) {
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.html);
    assert!(
        page.html.contains("Too many wrong passwords"),
        "{}",
        page.html
    );
    let full: u64 = seconds.parse().unwrap();
    let said = page
        .html
        .split("Logins wait for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no wait in {}", page.html));
    assert!(
        (full.saturating_sub(15)..=full).contains(&said),
        "said {said} s, expected about {full}: {}",
        page.html
    );
}

async fn admin_with_bob(t: &TestApp) -> Ui {
    let mut admin = Ui::new(&t.base);
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let created = admin
        .submit(
            "/users",
            "/users",
            &[("email", BOB), ("password", BOB_PASSWORD)],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    admin
}

async fn ten_wrong_passwords_lock_an_account_and_the_right_one_then_still_waits(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), with_admin).await;
    let mut admin = admin_with_bob(&t).await;
    let mut guesser = Ui::new(&t.base);
    for attempt in 1..=9 {
        let page = try_login("Bob@Example.com", &format!("guess {attempt}"), &mut guesser).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let tenth = try_login(BOB, "guess 10", &mut guesser).await;
    assert_waits(&tenth, "60");
    // The right password now waits too, unchecked, and says for how long.
    let right = try_login(BOB, BOB_PASSWORD, &mut Ui::new(&t.base)).await;
    assert_waits(&right, "60");

    // Per account: the admin, from the same address, is not held up by Bob's lock.
    Ui::new(&t.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // Only the admin token may end it, and it ends only the account asked for.
    let team = t.api.team("ops").await;
    let team_token = t.api.token("ops-bot", &[team]).await;
    let refused = t
        .api
        .call_as(Method::DELETE, "/api/v1/login-lockouts", &team_token, None)
        .await;
    assert_eq!(refused.status_code(), StatusCode::FORBIDDEN);
    let cleared = t
        .api
        .try_delete("/api/v1/login-lockouts?email=someone-else@example.com")
        .await;
    assert_eq!(cleared.ok("clearing nobody")["cleared"], 0);
    assert_waits(
        &try_login(BOB, BOB_PASSWORD, &mut Ui::new(&t.base)).await,
        "60",
    );
    let cleared = t
        .api
        .try_delete("/api/v1/login-lockouts?email=BOB@example.com")
        .await;
    assert_eq!(cleared.ok("clearing Bob")["cleared"], 1);
    Ui::new(&t.base).login(BOB, BOB_PASSWORD).await;

    // A good login forgets the count: nine more wrong ones do not lock; the tenth
    // after them does. The Users page's button ends that wait too.
    for attempt in 1..=9 {
        let page = try_login(BOB, &format!("again {attempt}"), &mut guesser).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "again {attempt}");
    }
    assert_waits(&try_login(BOB, "again 10", &mut guesser).await, "60");
    let users = admin.get("/users").await;
    let bob_id = users
        .html
        .split("id=\"user-")
        .find(|row| row.contains(BOB))
        .and_then(|row| row.split('"').next())
        .expect("Bob's row")
        .to_owned();
    let unlocked = admin
        .submit("/users", &format!("/users/{bob_id}/unlock"), &[])
        .await;
    assert_eq!(unlocked.status, StatusCode::SEE_OTHER, "{}", unlocked.html);
    Ui::new(&t.base).login(BOB, BOB_PASSWORD).await;
}

async fn one_address_guessing_many_accounts_waits_until_the_admin_token_ends_it(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), with_admin).await;
    let mut guesser = Ui::new(&t.base);
    // Made-up accounts count as real ones do, so the lock says nothing about which
    // emails exist.
    for n in 1..50 {
        let page = try_login(&format!("guess{n}@example.com"), "password", &mut guesser).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    assert_waits(
        &try_login("guess50@example.com", "password", &mut guesser).await,
        "60",
    );
    // Everyone behind that address waits now, the admin with the right password too.
    assert_waits(
        &try_login(ADMIN_EMAIL, ADMIN_PASSWORD, &mut Ui::new(&t.base)).await,
        "60",
    );
    let cleared = t.api.try_delete("/api/v1/login-lockouts").await;
    assert_eq!(cleared.ok("clearing all")["cleared"], 51);
    Ui::new(&t.base).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

async fn an_admin_changes_a_users_teams_and_role_in_the_browser_and_the_api(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), with_admin).await;
    let mut admin = admin_with_bob(&t).await;
    let ops = t.api.team("ops").await;
    let db = t.api.team("db").await;
    let users = t.api.get("/api/v1/users").await;
    let bob = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == BOB)
        .expect("Bob is listed")
        .clone();
    assert!(bob.get("password_hash").is_none());
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let me = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == ADMIN_EMAIL)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ops_id = ops.to_string();
    let saved = admin
        .submit(
            "/users",
            &format!("/users/{bob_id}/access"),
            &[("team_ids", ops_id.as_str())],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let mut bob_ui = Ui::new(&t.base);
    bob_ui.login(BOB, BOB_PASSWORD).await;
    let teams = bob_ui.get("/teams").await;
    assert!(
        teams.html.contains(">ops<") || teams.html.contains("ops"),
        "{}",
        teams.html
    );
    let listed = t.api.get("/api/v1/users").await;
    let bob_now = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == BOB)
        .unwrap()
        .clone();
    assert_eq!(bob_now["team_ids"], json!([ops_id]));
    assert_eq!(bob_now["is_admin"], false);

    // The API changes only what it is given.
    let patched = t
        .api
        .patch(
            &format!("/api/v1/users/{bob_id}"),
            json!({"team_ids": [db]}),
        )
        .await;
    assert_eq!(patched["team_ids"], json!([db.to_string()]));
    assert_eq!(patched["is_admin"], false);
    let promoted = t
        .api
        .patch(
            &format!("/api/v1/users/{bob_id}"),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(promoted["is_admin"], true);
    assert_eq!(promoted["team_ids"], json!([db.to_string()]));
    // Bob is an administrator from his next page on: the Users page is his now.
    assert_eq!(bob_ui.get("/users").await.status, StatusCode::OK);

    let unknown_team = t
        .api
        .try_patch(
            &format!("/api/v1/users/{bob_id}"),
            json!({"team_ids": [uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(unknown_team.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_team.field(), "team_ids");
    let unknown_key = t
        .api
        .try_patch(&format!("/api/v1/users/{bob_id}"), json!({"password": "x"}))
        .await;
    assert_eq!(unknown_key.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    let nobody = t
        .api
        .try_patch(
            &format!("/api/v1/users/{}", uuid::Uuid::new_v4()),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(nobody.status_code(), StatusCode::NOT_FOUND);

    // An administrator cannot demote themselves in the browser (there is always one left).
    let demoted = admin
        .submit("/users", &format!("/users/{me}/access"), &[])
        .await;
    assert_eq!(demoted.status, StatusCode::CONFLICT, "{}", demoted.html);
    assert!(demoted.html.contains("your own admin rights"));
    assert_eq!(admin.get("/users").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_reset_login_limits_lets_a_locked_out_admin_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    with_admin(&mut config);
    let app = App::start(config.clone()).await.unwrap();
    let mut guesser = Ui::new(&app.url());
    for attempt in 1..=9 {
        try_login(ADMIN_EMAIL, &format!("guess {attempt}"), &mut guesser).await;
    }
    assert_waits(
        &try_login(ADMIN_EMAIL, "guess 10", &mut guesser).await,
        "60",
    );
    app.shutdown().await;

    // A plain restart keeps the wait: it is in the database, not in memory.
    let app = start_when_free(config.clone()).await;
    assert_waits(
        &try_login(ADMIN_EMAIL, ADMIN_PASSWORD, &mut Ui::new(&app.url())).await,
        "60",
    );
    app.shutdown().await;
    config.reset_login_limits = true;
    let app = start_when_free(config).await;
    Ui::new(&app.url()).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    app.shutdown().await;
}
