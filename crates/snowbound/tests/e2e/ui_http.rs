//! The web UI over plain HTTP, as a browser with JavaScript off uses it: login, setup,
//! sessions, CSRF, team scoping, escaping, and every form as a plain POST.

use reqwest::StatusCode;
use serde_json::json;
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::Backend;
use snowbound_testkit::TestApp;

async fn app_with_admin() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, EmulatorConfig::default(), with_admin).await
}

#[tokio::test]
async fn setup_page_creates_the_first_admin_and_then_disappears() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let mut ui = Ui::new(&t.base);
    let home = ui.get("/").await;
    assert_eq!(home.location.as_deref(), Some("/setup"));
    let setup = ui.get("/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.html.contains("Create administrator"));

    let refused = ui
        .post_raw(
            "/setup",
            &[("email", "ada@example.com"), ("password", "0123456789ab")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "no CSRF token");
    let short = ui
        .submit(
            "/setup",
            "/setup",
            &[("email", "ada@example.com"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.html.contains("at least 10 characters"));

    let done = ui
        .submit(
            "/setup",
            "/setup",
            &[("email", "ada@example.com"), ("password", "0123456789ab")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location.as_deref(), Some("/integrations"));
    assert!(ui.cookies.contains_key("sb_session"));

    let mut stranger = Ui::new(&t.base);
    assert_eq!(stranger.get("/setup").await.status, StatusCode::NOT_FOUND);
    let again = stranger
        .post_raw(
            "/setup",
            &[("email", "eve@example.com"), ("password", "0123456789ab")],
        )
        .await;
    assert_ne!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(t.store().count_users().await.unwrap(), 1);
    assert_eq!(stranger.get("/").await.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn login_failure_cookie_flags_and_logout() {
    let t = app_with_admin().await;
    let mut ui = Ui::new(&t.base);
    let protected = ui.get("/incidents").await;
    assert_eq!(protected.status, StatusCode::SEE_OTHER);
    assert_eq!(
        protected.location.as_deref(),
        Some("/login?next=%2Fincidents")
    );

    let wrong = ui
        .submit(
            "/login",
            "/login",
            &[("email", ADMIN_EMAIL), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.html.contains("The email or the password is wrong."));
    assert!(wrong.cookie("sb_session").is_none());
    let unknown = ui
        .submit(
            "/login",
            "/login",
            &[("email", "who@example.com"), ("password", "nope")],
        )
        .await;
    assert!(unknown.html.contains("The email or the password is wrong."));

    let ok = ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = ok.cookie("sb_session").expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "http public URL: no Secure flag"
    );
    let session = ui.cookies["sb_session"].clone();
    assert_eq!(ui.get("/incidents").await.status, StatusCode::OK);

    let out = ui.submit("/incidents", "/logout", &[]).await;
    assert_eq!(out.location.as_deref(), Some("/login"));
    assert!(out.cookie("sb_session").unwrap().contains("Max-Age=0"));
    // The old cookie is dead on the server too, not just forgotten by the browser.
    ui.cookies.insert("sb_session".into(), session);
    assert_eq!(ui.get("/incidents").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn secure_cookie_when_the_public_url_is_https() {
    let t = TestApp::spawn_with(Backend::Sqlite, EmulatorConfig::default(), |c| {
        with_admin(c);
        c.public_url = Some("https://snowbound.example".into());
    })
    .await;
    let mut ui = Ui::new(&t.base);
    let ok = ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(ok.cookie("sb_session").unwrap().contains("; Secure"));
}

#[tokio::test]
async fn posts_without_the_csrf_token_or_from_another_origin_are_refused() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let incident = t.incident(team, "Disk full", "warning").await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let path = format!("/incidents/{incident}/acknowledge");

    let missing = ui.post_raw(&path, &[]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.html.contains("security token"), "{}", missing.html);
    let wrong = ui.post_raw(&path, &[("_csrf", "0000")]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let csrf = ui.get("/incidents").await.csrf();
    let foreign = ui
        .post_with_origin(&path, "https://evil.example", &[("_csrf", &csrf)])
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    let status = t.get(&format!("/api/v1/incidents/{incident}")).await["status"].clone();
    assert_eq!(status, "open", "nothing changed");

    let same_origin = ui
        .post_with_origin(&path, &t.base, &[("_csrf", &csrf)])
        .await;
    assert_eq!(same_origin.status, StatusCode::SEE_OTHER);
    let status = t.get(&format!("/api/v1/incidents/{incident}")).await["status"].clone();
    assert_eq!(status, "acknowledged");
}

#[tokio::test]
async fn a_user_who_is_not_admin_sees_only_their_teams() {
    let t = app_with_admin().await;
    let ours = t.team("ours").await;
    let theirs = t.team("theirs").await;
    let mine = t.incident(ours, "Our checkout is slow", "critical").await;
    let other = t.incident(theirs, "Their queue is stuck", "minor").await;
    let user = snowbound_server::accounts::new_user(
        "bob@example.com",
        "bobs long password",
        false,
        vec![ours],
    );
    t.store().create_user(&user).await.unwrap();

    let mut ui = Ui::new(&t.base);
    ui.login("bob@example.com", "bobs long password").await;
    let list = ui.get("/incidents").await;
    assert!(list.html.contains("Our checkout is slow"));
    assert!(!list.html.contains("Their queue is stuck"));
    assert!(
        !list.html.contains(">theirs<"),
        "other teams are not even filter options"
    );
    let filtered = ui.get(&format!("/incidents?team={theirs}")).await;
    assert!(!filtered.html.contains("Their queue is stuck"));
    assert_eq!(
        ui.get(&format!("/incidents/{other}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ui.get(&format!("/incidents/{mine}")).await.status,
        StatusCode::OK
    );
    let refused = ui
        .submit(
            "/incidents",
            &format!("/incidents/{other}/acknowledge"),
            &[],
        )
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn titles_are_escaped() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let id = t
        .incident(team, "<script>alert('x')</script> & more", "warning")
        .await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    for path in ["/incidents".to_owned(), format!("/incidents/{id}")] {
        let page = ui.get(&path).await;
        assert!(
            !page.html.contains("<script>alert"),
            "{path} is not escaped"
        );
        assert!(page.html.contains("&#60;script&#62;") || page.html.contains("&lt;script&gt;"));
    }
}

#[tokio::test]
async fn incident_forms_work_without_javascript() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let created = ui
        .submit(
            "/incidents/new",
            "/incidents",
            &[
                ("team_id", &team.to_string()),
                ("title", "Payments failing"),
                ("severity", "critical"),
                ("description", "5xx"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let location = created.location.unwrap();
    let id: uuid::Uuid = location
        .trim_start_matches("/incidents/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let page = format!("/incidents/{id}");
    let api = format!("/api/v1/incidents/{id}");
    let blank = ui
        .submit(
            "/incidents/new",
            "/incidents",
            &[
                ("team_id", &team.to_string()),
                ("title", " "),
                ("severity", "minor"),
            ],
        )
        .await;
    assert_eq!(blank.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(blank.html.contains("title: is required"));

    let post = |action: &'static str| format!("{page}/{action}");
    ui.submit(&page, &post("severity"), &[("severity", "minor")])
        .await;
    assert_eq!(t.get(&api).await["severity"], "minor");
    ui.submit(&page, &post("acknowledge"), &[]).await;
    assert_eq!(t.get(&api).await["status"], "acknowledged");
    let again = ui.submit(&page, &post("acknowledge"), &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.html.contains("cannot acknowledge"));

    ui.submit(
        &page,
        &post("forward"),
        &[("integration_id", &integration.to_string())],
    )
    .await;
    t.wait_synced(id).await;
    let detail = ui.get(&page).await;
    let number = t.record(id).unwrap()["number"].clone();
    assert!(
        detail.html.contains(&number),
        "the ServiceNow number is shown"
    );
    assert!(detail.html.contains("nav_to.do?uri=incident.do?sys_id="));

    ui.submit(
        &page,
        &post("resolve"),
        &[("comment", "Rolled back the deploy")],
    )
    .await;
    t.wait_synced(id).await;
    assert_eq!(
        t.record(id).unwrap()["close_notes"],
        "Rolled back the deploy"
    );
    ui.submit(&page, &post("reopen"), &[]).await;
    assert_eq!(t.get(&api).await["status"], "open");
    let retry = ui
        .submit(&page, &format!("{page}/links/{integration}/retry"), &[])
        .await;
    assert_eq!(retry.status, StatusCode::SEE_OTHER);
    let timeline = ui.get(&page).await.html;
    for entry in [
        "severity critical → minor",
        "acknowledged",
        "forwarded to",
        "resolved: Rolled back the deploy",
        "reopened",
    ] {
        assert!(timeline.contains(entry), "timeline lacks {entry}");
    }
}

fn integration_id(location: &str) -> String {
    location
        .trim_start_matches("/integrations/")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn integration_forms_work_without_javascript() {
    let t = app_with_admin().await;
    let team = t.team("payments").await;
    let other = t.team("checkout").await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let url = t.emulator.base_url();

    let form = ui.get("/integrations/new").await;
    for text in [
        "Always After Forwarding",
        "Only On Forwarding",
        "Create Outbound Integration",
    ] {
        assert!(form.html.contains(text), "create form lacks {text}");
    }
    let bad = ui
        .submit(
            "/integrations/new",
            "/integrations",
            &[
                ("display_name", "SN"),
                ("root_team_id", &team.to_string()),
                ("forwarding", "always"),
                // Plain http is allowed here (the emulator), other schemes never.
                ("instance_url", "ftp://example.com"),
                ("username", "admin"),
                ("password", "admin"),
                ("table", "incident"),
                ("close_code", "Duplicate"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.html.contains("must start with https://"),
        "{}",
        bad.html
    );
    assert!(bad.html.contains("value=\"SN\""), "typed values are kept");

    let created = ui
        .submit(
            "/integrations/new",
            "/integrations",
            &[
                ("display_name", "ServiceNow"),
                ("root_team_id", &team.to_string()),
                ("team_ids", &other.to_string()),
                ("forwarding", "always_after_forwarding"),
                ("instance_url", &url),
                ("username", "admin"),
                ("password", "admin"),
                ("table", "incident"),
                ("close_code", "Duplicate"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let location = created.location.unwrap();
    assert!(location.ends_with("/settings?done=created"));
    let id = integration_id(&location);
    let api = format!("/api/v1/integrations/{id}");
    let settings_path = format!("/integrations/{id}/settings");

    let settings = ui.get(&settings_path).await;
    for text in [
        "Authorization",
        "State Mapping",
        "Resolving Mapping",
        "Severity mapping",
        "API calls",
        "Preview",
    ] {
        assert!(settings.html.contains(text), "settings page lacks {text}");
    }
    assert!(
        settings
            .html
            .contains("<option value=\"1\" selected>New (1)</option>"),
        "state dropdown from sys_choice"
    );
    assert!(settings
        .html
        .contains("Resolved by caller (Resolved by caller)"));
    assert!(
        !settings.html.contains("admin</"),
        "the password is never shown back"
    );
    assert!(
        settings
            .html
            .contains("&#34;close_notes&#34;: &#34;Resolved from Snowbound&#34;"),
        "resolve preview"
    );

    // Test Connection as a plain form POST re-renders the page with each check.
    let tested = ui
        .submit(
            &settings_path,
            &format!("/integrations/{id}/test-connection"),
            &[],
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK);
    assert!(tested.html.contains("Connection works"), "{}", tested.html);
    assert!(tested.html.contains("Credentials accepted"));
    assert!(
        tested.html.contains("/api/now/table/sys_choice"),
        "its calls are in the log"
    );

    let mapped = ui
        .submit(
            &settings_path,
            &format!("/integrations/{id}/settings/mappings"),
            &[
                ("state_open", "2"),
                ("state_acknowledged", ""),
                ("state_resolved", "6"),
                ("close_code_field", "close_code"),
                ("close_notes_field", "close_notes"),
                ("close_code", "Resolved by caller"),
                ("close_notes_default", "Fixed via Snowbound"),
                ("primary_field", "urgency"),
                ("primary_critical", "1"),
                ("primary_warning", "2"),
                ("primary_minor", "3"),
                ("secondary_enabled", "1"),
                ("secondary_field", "impact"),
                ("secondary_critical", "1"),
                ("secondary_warning", "3"),
                ("secondary_minor", "3"),
            ],
        )
        .await;
    assert_eq!(mapped.status, StatusCode::SEE_OTHER, "{}", mapped.html);
    let stored = t.get(&api).await;
    let sn = &stored["servicenow"];
    assert_eq!(
        (sn["state_open"].as_str(), sn["close_code"].as_str()),
        (Some("2"), Some("Resolved by caller"))
    );
    assert_eq!(sn["severity"]["secondary_field"], "impact");
    assert_eq!(sn["severity"]["secondary_map"]["warning"], "3");
    assert_eq!(sn["close_notes_default"], "Fixed via Snowbound");

    let invalid = ui
        .submit(
            &settings_path,
            &format!("/integrations/{id}/settings/mappings"),
            &[
                ("state_open", "2"),
                ("state_resolved", "6"),
                ("close_code_field", "close_code"),
                ("close_notes_field", "close_code"),
                ("close_code", "Duplicate"),
                ("primary_field", "urgency"),
                ("primary_critical", "1"),
                ("primary_warning", "2"),
                ("primary_minor", "3"),
            ],
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.html.contains("must differ from close_code_field"));
    assert_eq!(
        t.get(&api).await["servicenow"]["severity"]["secondary_field"],
        "impact",
        "nothing saved"
    );

    // Secondary toggle off; authorization saved without retyping the password.
    ui.submit(
        &settings_path,
        &format!("/integrations/{id}/settings/mappings"),
        &[
            ("state_open", "1"),
            ("state_resolved", "6"),
            ("close_code_field", "close_code"),
            ("close_notes_field", "close_notes"),
            ("close_code", "Duplicate"),
            ("close_notes_default", "x"),
            ("primary_field", "urgency"),
            ("primary_critical", "1"),
            ("primary_warning", "2"),
            ("primary_minor", "3"),
            ("secondary_field", "impact"),
        ],
    )
    .await;
    assert!(t.get(&api).await["servicenow"]["severity"]["secondary_field"].is_null());
    let auth = ui
        .submit(
            &settings_path,
            &format!("/integrations/{id}/settings/authorization"),
            &[
                ("instance_url", &url),
                ("username", "admin"),
                ("password", ""),
                ("table", "incident"),
            ],
        )
        .await;
    assert_eq!(auth.status, StatusCode::SEE_OTHER);
    let retest = ui
        .submit(
            &settings_path,
            &format!("/integrations/{id}/test-connection"),
            &[],
        )
        .await;
    assert!(
        retest.html.contains("Connection works"),
        "the stored password was kept"
    );

    let edit_path = format!("/integrations/{id}/edit");
    let edited = ui
        .submit(
            &edit_path,
            &edit_path,
            &[
                ("display_name", "ServiceNow prod"),
                ("root_team_id", &team.to_string()),
                ("forwarding", "only_on_forwarding"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.html);
    let stored = t.get(&api).await;
    assert_eq!(
        (
            stored["display_name"].as_str(),
            stored["forwarding"].as_str()
        ),
        (Some("ServiceNow prod"), Some("only_on_forwarding"))
    );
    assert_eq!(
        stored["team_ids"],
        json!([]),
        "unticked further team removed"
    );

    let list = ui.get("/integrations").await;
    assert!(list.html.contains("ServiceNow prod"));
    assert!(list.html.contains("Only On Forwarding"));
}

#[tokio::test]
async fn without_sys_choice_access_the_mappings_are_text_inputs_with_the_warning() {
    let emulator = EmulatorConfig {
        users: vec![snowbound_emulator::User::new("itil_only", "pw", &["itil"])],
        ..EmulatorConfig::default()
    };
    let t = TestApp::spawn_with(Backend::Sqlite, emulator, with_admin).await;
    let team = t.team("ops").await;
    let id = t
        .integration(
            team,
            "always",
            json!({"username": "itil_only", "password": "pw"}),
        )
        .await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = ui.get(&format!("/integrations/{id}/settings")).await;
    assert!(
        page.html
            .contains("<input id=\"state_open\" name=\"state_open\" value=\"1\""),
        "{}",
        page.html
    );
    assert!(page.html.contains("cannot read sys_choice (HTTP 403)"));
}

#[tokio::test]
async fn teams_sources_and_routing_rules_pages() {
    let t = app_with_admin().await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let created = ui.submit("/teams", "/teams", &[("name", "Storage")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let duplicate = ui.submit("/teams", "/teams", &[("name", "Storage")]).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert!(duplicate.html.contains("a team with this name exists"));
    let teams = t.get("/api/v1/teams").await;
    let team = snowbound_testkit::id(&teams[0]);
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    t.post(
        "/api/v1/sources",
        json!({"team_id": team, "type": "alertmanager", "name": "prod alertmanager"}),
    )
    .await;
    t.post(
        "/api/v1/routing-rules",
        json!({"team_id": team, "name": "Critical to ServiceNow",
               "when": {"severity": ["critical"]}, "then": {"forward_to": [integration]}}),
    )
    .await;

    let sources = ui.get(&format!("/teams/{team}/sources")).await;
    assert!(sources.html.contains("prod alertmanager") && sources.html.contains("alertmanager"));
    let rules = ui.get(&format!("/teams/{team}/rules")).await;
    assert!(rules.html.contains("Critical to ServiceNow"));
    assert!(rules.html.contains("severity is critical"));
    assert!(rules.html.contains("forward to SN always_after_forwarding"));

    let user = snowbound_server::accounts::new_user(
        "eve@example.com",
        "eves long password",
        false,
        vec![],
    );
    t.store().create_user(&user).await.unwrap();
    let mut eve = Ui::new(&t.base);
    eve.login("eve@example.com", "eves long password").await;
    assert_eq!(
        eve.get(&format!("/teams/{team}/rules")).await.status,
        StatusCode::NOT_FOUND
    );
    let refused = eve.submit("/teams", "/teams", &[("name", "Mine")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}
