//! The admin pages of the web UI over plain HTTP, as a browser with JavaScript off uses
//! them: a team's alert sources and routing rules, the Users page, and team isolation
//! across every page of another team.

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::Backend;
use snowbound_testkit::TestApp;

async fn app_with_admin() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, EmulatorConfig::default(), with_admin).await
}

pub(crate) async fn admin(t: &TestApp) -> Ui {
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    ui
}

/// The `value` of the readonly input labelled as the ingest URL of `name`.
fn ingest_url(html: &str, name: &str) -> String {
    let label = format!("Ingest URL of {name}</label>");
    let at = html
        .find(&label)
        .unwrap_or_else(|| panic!("no URL of {name}"));
    let marker = "readonly value=\"";
    let start = at + html[at..].find(marker).unwrap() + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#x2F;", "/")
}

/// The first path of a form whose action ends with `suffix`.
pub(crate) fn action(html: &str, suffix: &str) -> String {
    html.split("action=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().replace("&#x2F;", "/"))
        .find(|a| a.ends_with(suffix))
        .unwrap_or_else(|| panic!("no form posting to …{suffix}"))
}

fn alert(dedup: &str, title: &str) -> Value {
    json!({"dedup_key": dedup, "title": title, "severity": "critical",
           "attributes": {"env": "prod"}})
}

#[tokio::test]
async fn sources_are_created_rotated_and_deleted_through_forms() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let mut ui = admin(&t).await;
    let page = format!("/teams/{team}/sources");

    let refused = ui
        .submit(
            &page,
            &page,
            &[
                ("name", "prod am"),
                ("type", "webhook"),
                ("severity_map", "page=urgent"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.html.contains("line 1: unknown Severity `urgent`"),
        "{}",
        refused.html
    );
    assert!(
        refused.html.contains("value=\"prod am\""),
        "the typed name stays"
    );
    assert!(
        refused.html.contains(">page=urgent</textarea>"),
        "the typed map stays"
    );
    let nameless = ui
        .submit(&page, &page, &[("name", " "), ("type", "webhook")])
        .await;
    assert_eq!(nameless.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nameless
        .html
        .contains("<p class=\"field-error\">name: is required</p>"));

    let created = ui
        .submit(
            &page,
            &page,
            &[
                ("name", "prod webhook"),
                ("type", "webhook"),
                ("severity_map", "Page=critical\n\nlow = minor"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let shown = ui.get(created.location.as_deref().unwrap()).await;
    assert!(shown.html.contains("Created."));
    assert!(shown.html.contains("low → minor, page → critical"));
    let url = ingest_url(&shown.html, "prod webhook");
    assert!(url.starts_with(&format!("{}/ingest/sbi_", t.base)), "{url}");

    let (status, answer) = t.send_alert(&url, alert("db-1", "DB down")).await.parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let incident = answer["incident_id"].as_str().unwrap().to_owned();
    assert!(ui.get("/incidents").await.html.contains("DB down"));
    assert_eq!(
        ui.get(&format!("/incidents/{incident}")).await.status,
        StatusCode::OK
    );

    let rotated = ui.submit(&page, &action(&shown.html, "/rotate"), &[]).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER);
    let after = ui.get(rotated.location.as_deref().unwrap()).await;
    assert!(after.html.contains("Secret rotated."));
    let new_url = ingest_url(&after.html, "prod webhook");
    assert_ne!(new_url, url);
    let (old, _) = t.send_alert(&url, alert("db-2", "Old URL")).await.parts();
    assert_eq!(old, StatusCode::NOT_FOUND, "the old URL stops working");
    let (new, _) = t
        .send_alert(&new_url, alert("db-2", "New URL"))
        .await
        .parts();
    assert_eq!(new, StatusCode::ACCEPTED);

    let deleted = ui.submit(&page, &action(&after.html, "/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(ui.get(&page).await.html.contains("No sources yet."));
    let (gone, _) = t
        .send_alert(&new_url, alert("db-3", "Deleted"))
        .await
        .parts();
    assert_eq!(gone, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rule_made_in_the_form_forwards_incidents_and_rules_reorder() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let mut ui = admin(&t).await;
    let page = format!("/teams/{team}/rules");

    let form = ui.get(&page).await;
    assert!(form
        .html
        .contains(&format!("name=\"forward_to\" value=\"{integration}\"")));
    let bad = ui
        .submit(
            &page,
            &page,
            &[
                ("name", "broken"),
                ("attributes", "host=~(unclosed"),
                ("forward_to", &integration.to_string()),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.html.contains("not a valid regular expression"),
        "{}",
        bad.html
    );
    assert!(bad.html.contains(">host=~(unclosed</textarea>"));
    let nothing = ui.submit(&page, &page, &[("name", "does nothing")]).await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nothing.html.contains("must forward_to or exclude_from"));

    for (name, extra) in [
        (
            "Criticals in prod",
            vec![
                ("severity", "critical"),
                ("attributes", "env=prod\nsvc~pay"),
            ],
        ),
        (
            "Databases",
            vec![("title_contains", "db"), ("attributes", "host=~^db-")],
        ),
    ] {
        let integration = integration.to_string();
        let mut fields = vec![("name", name), ("forward_to", integration.as_str())];
        fields.extend(extra);
        let created = ui.submit(&page, &page, &fields).await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    }
    let shown = ui.get(&page).await.html;
    assert!(
        shown.contains("When severity is critical and env = prod and svc contains “pay” → forward to SN always_after_forwarding"),
        "{shown}"
    );
    assert!(shown.contains("When title contains “db” and host matches /^db-/"));
    assert!(shown.find("Criticals in prod").unwrap() < shown.find("Databases").unwrap());

    let moved = ui
        .submit(&page, &action(&shown, "/move"), &[("direction", "down")])
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    let reordered = ui.get(&page).await.html;
    assert!(reordered.find("Databases").unwrap() < reordered.find("Criticals in prod").unwrap());
    let rules = t
        .get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await;
    assert_eq!(
        rules[0]["name"], "Databases",
        "the API sees the new order: {rules}"
    );

    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hook"}),
        )
        .await;
    let url = source["ingest_url"].as_str().unwrap();
    let body = json!({"dedup_key": "p1", "title": "Payments slow", "severity": "critical",
                      "attributes": {"env": "prod", "svc": "payments"}});
    let (status, answer) = t.send_alert(url, body).await.parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let incident = answer["incident_id"].as_str().unwrap().parse().unwrap();
    t.wait_synced(incident).await;
    let record = t.record(incident).expect("forwarded by the rule");
    assert_eq!(record["short_description"], "Payments slow");

    let removed = ui.submit(&page, &action(&reordered, "/delete"), &[]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let left = ui.get(&page).await.html;
    assert!(!left.contains("Databases") && left.contains("Criticals in prod"));
}

async fn user_id(t: &TestApp, email: &str) -> String {
    let user = t.store().user_by_email(email).await.unwrap().unwrap();
    user.id.to_string()
}

#[tokio::test]
async fn users_are_created_reset_and_deleted_and_lose_their_sessions_at_once() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let mut admin = admin(&t).await;
    assert!(admin
        .get("/incidents")
        .await
        .html
        .contains("href=\"/users\""));

    let short = admin
        .submit(
            "/users",
            "/users",
            &[
                ("email", "bob@example.com"),
                ("password", "short"),
                ("team_ids", &team.to_string()),
            ],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short
        .html
        .contains("<p class=\"field-error\">The password needs at least 10 characters.</p>"));
    assert!(
        short.html.contains("value=\"bob@example.com\""),
        "the typed email stays"
    );
    assert!(
        short.html.contains(&format!("value=\"{team}\" checked")),
        "the chosen team stays"
    );
    let created = admin
        .submit(
            "/users",
            "/users",
            &[
                ("email", "bob@example.com"),
                ("password", "bobs first password"),
                ("team_ids", &team.to_string()),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let again = admin
        .submit(
            "/users",
            "/users",
            &[
                ("email", "BOB@example.com"),
                ("password", "another password"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again
        .html
        .contains("A user with this email exists already."));
    let listed = admin.get("/users").await.html;
    assert!(
        listed.contains("bob@example.com") && listed.contains(">ops</td>"),
        "{listed}"
    );

    let mut bob = Ui::new(&t.base);
    bob.login("bob@example.com", "bobs first password").await;
    assert_eq!(bob.get("/incidents").await.status, StatusCode::OK);
    assert!(!bob.get("/incidents").await.html.contains("href=\"/users\""));
    assert_eq!(bob.get("/users").await.status, StatusCode::FORBIDDEN);
    let sneaky = bob
        .submit(
            "/incidents",
            "/users",
            &[
                ("email", "eve@example.com"),
                ("password", "eves long password"),
                ("is_admin", "1"),
            ],
        )
        .await;
    assert_eq!(sneaky.status, StatusCode::FORBIDDEN);
    assert!(t
        .store()
        .user_by_email("eve@example.com")
        .await
        .unwrap()
        .is_none());

    let bob_id = user_id(&t, "bob@example.com").await;
    let reset_path = format!("/users/{bob_id}/password");
    let too_short = admin
        .submit("/users", &reset_path, &[("password", "tiny")])
        .await;
    assert_eq!(too_short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_short
        .html
        .contains("The password needs at least 10 characters."));
    assert_eq!(
        bob.get("/incidents").await.status,
        StatusCode::OK,
        "a refused reset changes nothing"
    );
    let reset = admin
        .submit(
            "/users",
            &reset_path,
            &[("password", "bobs second password")],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bob.get("/incidents").await.status,
        StatusCode::SEE_OTHER,
        "logged out at once"
    );
    let old = bob
        .submit(
            "/login",
            "/login",
            &[
                ("email", "bob@example.com"),
                ("password", "bobs first password"),
            ],
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    bob.login("bob@example.com", "bobs second password").await;
    assert_eq!(bob.get("/incidents").await.status, StatusCode::OK);

    let admin_id = user_id(&t, ADMIN_EMAIL).await;
    let own = admin
        .submit(
            "/users",
            &format!("/users/{admin_id}/password"),
            &[("password", "a new admin password")],
        )
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER);
    assert_eq!(
        admin.get("/users").await.status,
        StatusCode::OK,
        "the admin's own session stays"
    );
    let myself = admin
        .submit("/users", &format!("/users/{admin_id}/delete"), &[])
        .await;
    assert_eq!(myself.status, StatusCode::CONFLICT);
    assert!(myself.html.contains("You cannot delete yourself."));

    let deleted = admin
        .submit("/users", &format!("/users/{bob_id}/delete"), &[])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bob.get("/incidents").await.status,
        StatusCode::SEE_OTHER,
        "logged out at once"
    );
    let gone = bob
        .submit(
            "/login",
            "/login",
            &[
                ("email", "bob@example.com"),
                ("password", "bobs second password"),
            ],
        )
        .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert!(!admin.get("/users").await.html.contains("bob@example.com"));
}

#[tokio::test]
async fn the_new_forms_refuse_posts_without_the_csrf_token() {
    let t = app_with_admin().await;
    let team = t.team("ops").await;
    let integration = t.integration(team, "always", json!({})).await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hook"}),
        )
        .await;
    let source_id = source["id"].as_str().unwrap();
    let rule = t
        .post(
            "/api/v1/routing-rules",
            json!({"team_id": team, "name": "r", "then": {"exclude_from": [integration]}}),
        )
        .await;
    let rule_id = rule["id"].as_str().unwrap();
    let mut ui = admin(&t).await;
    let admin_id = user_id(&t, ADMIN_EMAIL).await;
    let posts = [
        (
            format!("/teams/{team}/sources"),
            vec![("name", "x"), ("type", "webhook")],
        ),
        (format!("/teams/{team}/sources/{source_id}/rotate"), vec![]),
        (format!("/teams/{team}/sources/{source_id}/delete"), vec![]),
        (
            format!("/teams/{team}/rules"),
            vec![("name", "x"), ("stop", "1")],
        ),
        (
            format!("/teams/{team}/rules/{rule_id}/move"),
            vec![("direction", "down")],
        ),
        (format!("/teams/{team}/rules/{rule_id}/delete"), vec![]),
        (
            "/users".to_owned(),
            vec![
                ("email", "eve@example.com"),
                ("password", "eves long password"),
            ],
        ),
        (
            format!("/users/{admin_id}/password"),
            vec![("password", "taken over!!")],
        ),
        (
            format!("/integrations/{integration}/settings/who-wins"),
            vec![("state", "snowbound"), ("severity", "snowbound")],
        ),
    ];
    for (path, fields) in &posts {
        let missing = ui.post_raw(path, fields).await;
        assert_eq!(
            missing.status,
            StatusCode::FORBIDDEN,
            "{path} without a token"
        );
        let mut forged = vec![("_csrf", "0".repeat(64))];
        forged.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let wrong = ui.post_raw(path, &forged).await;
        assert_eq!(
            wrong.status,
            StatusCode::FORBIDDEN,
            "{path} with a wrong token"
        );
    }
    assert_eq!(
        t.get(&format!("/api/v1/sources/{source_id}")).await["ingest_url"],
        source["ingest_url"]
    );
    assert_eq!(
        t.get(&format!("/api/v1/routing-rules?team_id={team}"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(t.store().count_users().await.unwrap(), 1);
    assert_eq!(
        t.get(&format!("/api/v1/integrations/{integration}")).await["servicenow"]["who_wins"],
        json!({"state": "latest", "severity": "latest"})
    );
    let stored = t.store().user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    assert!(
        snowbound_server::accounts::verify_password(ADMIN_PASSWORD, &stored.password_hash),
        "the password is unchanged"
    );
}

/// Issue #7: every page of another team's objects is "not found" for a member, whether
/// read or posted to, and a form of the member's own team cannot reach them either.
#[tokio::test]
async fn a_member_gets_404_on_every_page_of_another_team() {
    let t = app_with_admin().await;
    let ours = t.team("ours").await;
    let theirs = t.team("theirs").await;
    let integration = t.integration(theirs, "always", json!({})).await;
    let incident = t.incident(theirs, "Their queue is stuck", "minor").await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": theirs, "type": "webhook", "name": "theirs"}),
        )
        .await;
    let source_id = source["id"].as_str().unwrap().to_owned();
    let rule = t
        .post(
            "/api/v1/routing-rules",
            json!({"team_id": theirs, "name": "theirs", "then": {"forward_to": [integration]}}),
        )
        .await;
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let member = snowbound_server::accounts::new_user(
        "bob@example.com",
        "bobs long password",
        false,
        vec![ours],
    );
    t.store().create_user(&member).await.unwrap();
    let mut bob = Ui::new(&t.base);
    bob.login("bob@example.com", "bobs long password").await;
    assert!(!bob.get("/teams").await.html.contains("theirs"));

    let pages = [
        format!("/incidents/{incident}"),
        format!("/integrations/{integration}/edit"),
        format!("/integrations/{integration}/settings"),
        format!("/integrations/{integration}/choices?field=state"),
        format!("/teams/{theirs}/sources"),
        format!("/teams/{theirs}/sources/{source_id}"),
        // Through a page of bob's own team, with the other team's source in the path.
        format!("/teams/{ours}/sources/{source_id}"),
        format!("/teams/{theirs}/rules"),
    ];
    for path in &pages {
        let page = bob.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {path}");
        assert!(
            !page.html.contains("Their queue") && !page.html.contains("SN always"),
            "{path} leaks"
        );
    }
    let integration = integration.to_string();
    let integration = integration.to_string();
    let posts = [
        (
            format!("/incidents/{incident}/severity"),
            vec![("severity", "critical")],
        ),
        (format!("/incidents/{incident}/acknowledge"), vec![]),
        (format!("/incidents/{incident}/resolve"), vec![]),
        (format!("/incidents/{incident}/reopen"), vec![]),
        (
            format!("/incidents/{incident}/forward"),
            vec![("integration_id", integration.as_str())],
        ),
        (
            format!("/incidents/{incident}/links/{integration}/retry"),
            vec![],
        ),
        (
            format!("/integrations/{integration}/edit"),
            vec![("display_name", "mine")],
        ),
        (
            format!("/integrations/{integration}/settings/authorization"),
            vec![("username", "x")],
        ),
        (
            format!("/integrations/{integration}/settings/mappings"),
            vec![],
        ),
        (
            format!("/integrations/{integration}/test-connection"),
            vec![],
        ),
        (
            format!("/integrations/{integration}/settings/who-wins"),
            vec![("state", "snowbound"), ("severity", "snowbound")],
        ),
        (
            format!("/teams/{theirs}/sources"),
            vec![("name", "x"), ("type", "webhook")],
        ),
        (
            format!("/teams/{theirs}/sources/{source_id}/rotate"),
            vec![],
        ),
        (
            format!("/teams/{theirs}/sources/{source_id}/delete"),
            vec![],
        ),
        (
            format!("/teams/{theirs}/rules"),
            vec![("name", "x"), ("stop", "1")],
        ),
        (
            format!("/teams/{theirs}/rules/{rule_id}/move"),
            vec![("direction", "up")],
        ),
        (format!("/teams/{theirs}/rules/{rule_id}/delete"), vec![]),
        // Through a page of bob's own team, with the other team's object in the path.
        (format!("/teams/{ours}/sources/{source_id}/rotate"), vec![]),
        (format!("/teams/{ours}/sources/{source_id}/delete"), vec![]),
        (
            format!("/teams/{ours}/rules/{rule_id}/move"),
            vec![("direction", "up")],
        ),
        (format!("/teams/{ours}/rules/{rule_id}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let refused = bob.submit("/incidents", path, fields).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "POST {path}");
    }
    let view = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(
        (view["status"].as_str(), view["severity"].as_str()),
        (Some("open"), Some("minor"))
    );
    assert_eq!(
        t.get(&format!("/api/v1/sources/{source_id}")).await["ingest_url"],
        source["ingest_url"]
    );
    assert_eq!(
        t.get(&format!("/api/v1/routing-rules/{rule_id}")).await["name"],
        "theirs"
    );
    assert_eq!(
        t.get(&format!("/api/v1/integrations/{integration}")).await["display_name"],
        "SN always"
    );
}
