//! The [`Store`] trait over the shared implementation: each method is its entity's
//! function of the same name.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::Source;
use snowbound_core::{Credentials, Incident, Integration, Team, TimelineEntry};
use uuid::Uuid;

use super::dialect::Dialect;
use super::{
    api_calls, audit, counts, inbound, incident_writes, incidents, integrations, journal, links,
    login_failures, meta, rules, sources, teams, tokens, users, SqlStore,
};
use crate::types::*;
use crate::{
    AdoptRecord, Completion, InboundLink, InboundWrite, JournalItem, JournalState, LeaseOutcome,
    PokeLease, PokeOutcome, PollLease, PollResult, PollState, Result, Session, StandingNote, Store,
    User,
};
use snowbound_core::login_limits::{LimitedBy, LoginLimits};

#[async_trait]
impl<D: Dialect> Store for SqlStore<D> {
    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        meta::get_meta(self, key).await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        meta::set_meta(self, key, value).await
    }

    async fn check_writable(&self) -> Result<()> {
        meta::check_writable(self).await
    }

    async fn announce(&self, message: &str) -> Result<()> {
        self.db.announce(message).await
    }

    async fn create_team(&self, team: &Team) -> Result<()> {
        teams::create_team(self, team).await
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        teams::list_teams(self).await
    }

    async fn get_team(&self, id: Uuid) -> Result<Team> {
        teams::get_team(self, id).await
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        tokens::create_token(self, token).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        tokens::token_by_hash(self, hash).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        tokens::list_tokens(self).await
    }

    async fn revoke_token(&self, id: Uuid) -> Result<()> {
        tokens::revoke_token(self, id).await
    }

    async fn create_integration(
        &self,
        integration: &Integration,
        secrets: &Credentials,
    ) -> Result<()> {
        integrations::create_integration(self, integration, secrets).await
    }

    async fn update_integration(
        &self,
        integration: &Integration,
        secrets: &Credentials,
    ) -> Result<()> {
        integrations::update_integration(self, integration, secrets).await
    }

    async fn delete_integration(&self, id: Uuid) -> Result<()> {
        integrations::delete_integration(self, id).await
    }

    async fn get_integration(&self, id: Uuid) -> Result<IntegrationRecord> {
        integrations::get_integration(self, id).await
    }

    async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>> {
        integrations::list_integrations(self).await
    }

    async fn list_integration_settings(&self) -> Result<Vec<Integration>> {
        integrations::list_integration_settings(self).await
    }

    async fn integration_credentials(&self, id: Uuid) -> Result<Credentials> {
        integrations::integration_credentials(self, id).await
    }

    async fn pause_integration(&self, id: Uuid, until: DateTime<Utc>) -> Result<()> {
        integrations::pause_integration(self, id, until).await
    }

    async fn mark_integration_failing(&self, id: Uuid, error: &str) -> Result<()> {
        integrations::mark_integration_failing(self, id, error).await
    }

    async fn create_incident(
        &self,
        incident: &Incident,
        timeline: &[TimelineEntry],
        links: &[NewLink],
    ) -> Result<()> {
        incidents::create_incident(self, incident, timeline, links).await
    }

    async fn update_incident(
        &self,
        incident: &Incident,
        expected_updated_at: DateTime<Utc>,
        timeline: &[TimelineEntry],
        new_links: &[NewLink],
    ) -> Result<()> {
        incidents::update_incident(self, incident, expected_updated_at, timeline, new_links).await
    }

    async fn write_incidents(&self, writes: &[IncidentWrite]) -> Result<Vec<Result<()>>> {
        incident_writes::write_incidents(self, writes).await
    }

    async fn get_incident(&self, id: Uuid) -> Result<Incident> {
        incidents::get_incident(self, id).await
    }

    async fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        incidents::list_incidents(self, filter).await
    }

    async fn timeline(&self, incident_id: Uuid) -> Result<Vec<TimelineEntry>> {
        incidents::timeline(self, incident_id).await
    }

    async fn add_comment(
        &self,
        incident_id: Uuid,
        actor: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        journal::add_comment(self, incident_id, actor, text, at).await
    }

    async fn journal_pending(
        &self,
        incident_id: Uuid,
        integration_id: Uuid,
        limit: u32,
    ) -> Result<Vec<JournalItem>> {
        journal::journal_pending(self, incident_id, integration_id, limit).await
    }

    async fn mark_journal(
        &self,
        lease: &Lease,
        timeline_id: i64,
        state: JournalState,
    ) -> Result<bool> {
        journal::mark_journal(self, lease, timeline_id, state).await
    }

    async fn forward(&self, link: &NewLink, timeline: &TimelineEntry) -> Result<()> {
        links::forward(self, link, timeline).await
    }

    async fn links_of_incident(&self, incident_id: Uuid) -> Result<Vec<Link>> {
        links::links_of_incident(self, incident_id).await
    }

    async fn get_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<Link> {
        links::get_link(self, incident_id, integration_id).await
    }

    async fn retry_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()> {
        links::retry_link(self, incident_id, integration_id).await
    }

    async fn recreate_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()> {
        links::recreate_link(self, incident_id, integration_id).await
    }

    async fn lease_due_links(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        only_integration: Option<Uuid>,
    ) -> Result<Vec<Lease>> {
        links::lease_due_links(self, owner, now, lease_until, limit, only_integration).await
    }

    async fn renew_leases(
        &self,
        leases: &[Lease],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        links::renew_leases(self, leases, now, until).await
    }

    async fn release_all_leases(&self) -> Result<u64> {
        links::release_all_leases(self).await
    }

    async fn complete_lease(&self, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool> {
        links::complete_lease(self, lease, outcome).await
    }

    async fn complete_leases(&self, done: &[Completion]) -> Result<Vec<bool>> {
        links::complete_leases(self, done).await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        links::next_due_at(self).await
    }

    async fn record_api_calls(
        &self,
        integration_id: Uuid,
        incident_id: Option<Uuid>,
        calls: &[ApiCallRecord],
    ) -> Result<()> {
        api_calls::record_api_calls(self, integration_id, incident_id, calls).await
    }

    async fn list_api_calls(&self, filter: &ApiCallFilter) -> Result<Vec<ApiCallRecord>> {
        api_calls::list_api_calls(self, filter).await
    }

    async fn count_users(&self) -> Result<i64> {
        users::count_users(self).await
    }

    async fn state_counts(&self) -> Result<StateCounts> {
        counts::state_counts(self).await
    }

    async fn create_user(&self, user: &User) -> Result<()> {
        users::create_user(self, user).await
    }

    async fn create_first_user(&self, user: &User) -> Result<bool> {
        users::create_first_user(self, user).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        users::user_by_email(self, email).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        users::list_users(self).await
    }

    async fn get_user(&self, id: Uuid) -> Result<User> {
        users::get_user(self, id).await
    }

    async fn delete_user(&self, id: Uuid) -> Result<()> {
        users::delete_user(self, id).await
    }

    async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<()> {
        users::set_user_password(self, id, password_hash, keep_session).await
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        users::create_session(self, session).await
    }

    async fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<(Session, User)>> {
        users::session(self, id, now).await
    }

    async fn delete_session(&self, id: &str) -> Result<()> {
        users::delete_session(self, id).await
    }

    async fn update_user_access(&self, id: Uuid, is_admin: bool, team_ids: &[Uuid]) -> Result<()> {
        users::update_user_access(self, id, is_admin, team_ids).await
    }

    async fn count_login_failure(
        &self,
        keys: &[(String, LimitedBy)],
        limits: &LoginLimits,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        login_failures::count_login_failure(self, keys, limits, now).await
    }

    async fn login_locked_until(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        login_failures::login_locked_until(self, keys, now).await
    }

    async fn clear_login_failures(&self, key: Option<&str>) -> Result<u64> {
        login_failures::clear_login_failures(self, key).await
    }

    async fn record_audit(&self, event: &snowbound_core::audit::NewAuditEvent) -> Result<()> {
        audit::record_audit(self, event).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<snowbound_core::audit::AuditEvent>> {
        audit::list_audit(self, filter).await
    }

    async fn create_source(&self, source: &Source, secret: &SecretString) -> Result<()> {
        sources::create_source(self, source, secret).await
    }

    async fn get_source(&self, id: Uuid) -> Result<Source> {
        sources::get_source(self, id).await
    }

    async fn list_sources(&self, team_ids: Option<&[Uuid]>) -> Result<Vec<Source>> {
        sources::list_sources(self, team_ids).await
    }

    async fn update_source(&self, source: &Source) -> Result<()> {
        sources::update_source(self, source).await
    }

    async fn set_source_hmac_secret(&self, id: Uuid, secret: Option<&SecretString>) -> Result<()> {
        sources::set_source_hmac_secret(self, id, secret).await
    }

    async fn source_hmac_secret(&self, id: Uuid) -> Result<Option<SecretString>> {
        sources::source_hmac_secret(self, id).await
    }

    async fn keep_source_payload(
        &self,
        source_id: Uuid,
        received_at: DateTime<Utc>,
        body: &[u8],
    ) -> Result<()> {
        sources::keep_source_payload(self, source_id, received_at, body).await
    }

    async fn source_payloads(&self, source_id: Uuid) -> Result<Vec<KeptPayload>> {
        sources::source_payloads(self, source_id).await
    }

    async fn delete_source(&self, id: Uuid) -> Result<()> {
        sources::delete_source(self, id).await
    }

    async fn source_secret(&self, id: Uuid) -> Result<SecretString> {
        sources::source_secret(self, id).await
    }

    async fn rotate_source_secret(&self, id: Uuid, secret: &SecretString) -> Result<()> {
        sources::rotate_source_secret(self, id, secret).await
    }

    async fn source_by_secret(&self, secret: &str) -> Result<Option<Source>> {
        sources::source_by_secret(self, secret).await
    }

    async fn open_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
    ) -> Result<Option<Incident>> {
        sources::open_incident_for_key(self, source_id, dedup_key).await
    }

    async fn create_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
        incident: &Incident,
        timeline: &[TimelineEntry],
        links: &[NewLink],
    ) -> Result<()> {
        sources::create_incident_for_key(self, source_id, dedup_key, incident, timeline, links)
            .await
    }

    async fn create_routing_rule(&self, rule: &RoutingRule) -> Result<()> {
        rules::create_routing_rule(self, rule).await
    }

    async fn get_routing_rule(&self, id: Uuid) -> Result<RoutingRule> {
        rules::get_routing_rule(self, id).await
    }

    async fn list_routing_rules(&self, team_ids: Option<&[Uuid]>) -> Result<Vec<RoutingRule>> {
        rules::list_routing_rules(self, team_ids).await
    }

    async fn update_routing_rule(&self, rule: &RoutingRule) -> Result<()> {
        rules::update_routing_rule(self, rule).await
    }

    async fn delete_routing_rule(&self, id: Uuid) -> Result<()> {
        rules::delete_routing_rule(self, id).await
    }

    async fn reorder_routing_rules(&self, team_id: Uuid, rule_ids: &[Uuid]) -> Result<()> {
        rules::reorder_routing_rules(self, team_id, rule_ids).await
    }

    async fn fired_rules(&self, incident_id: Uuid) -> Result<Vec<Uuid>> {
        rules::fired_rules(self, incident_id).await
    }

    async fn record_firings(&self, firings: &[RuleFiring]) -> Result<()> {
        rules::record_firings(self, firings).await
    }

    async fn routing_history(
        &self,
        team_ids: Option<&[Uuid]>,
        limit: u32,
    ) -> Result<Vec<RuleFiring>> {
        rules::routing_history(self, team_ids, limit).await
    }

    async fn enqueue_poke(
        &self,
        source_id: Uuid,
        sys_id: &str,
        table: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        inbound::enqueue_poke(self, source_id, sys_id, table, now).await
    }

    async fn lease_due_pokes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PokeLease>> {
        inbound::lease_due_pokes(self, owner, now, lease_until, limit).await
    }

    async fn complete_poke(
        &self,
        lease: &PokeLease,
        outcome: &PokeOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        inbound::complete_poke(self, lease, outcome, now).await
    }

    async fn count_pokes(&self, source_id: Uuid) -> Result<i64> {
        inbound::count_pokes(self, source_id).await
    }

    async fn set_poll_schedule(&self, source_id: Uuid, interval_ms: Option<i64>) -> Result<()> {
        inbound::set_poll_schedule(self, source_id, interval_ms).await
    }

    async fn lease_due_polls(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PollLease>> {
        inbound::lease_due_polls(self, owner, now, lease_until, limit).await
    }

    async fn complete_poll(&self, lease: &PollLease, result: &PollResult) -> Result<bool> {
        inbound::complete_poll(self, lease, result).await
    }

    async fn poll_state(&self, source_id: Uuid) -> Result<Option<PollState>> {
        inbound::poll_state(self, source_id).await
    }

    async fn inbound_link(
        &self,
        integration_id: Uuid,
        sys_id: &str,
    ) -> Result<Option<InboundLink>> {
        inbound::inbound_link(self, integration_id, sys_id).await
    }

    async fn apply_inbound(&self, write: &InboundWrite) -> Result<()> {
        inbound::apply_inbound(self, write).await
    }

    async fn standing_notes(&self, integration_id: Uuid, limit: u32) -> Result<Vec<StandingNote>> {
        inbound::standing_notes(self, integration_id, limit).await
    }

    async fn poke_rev(&self, source_id: Uuid, sys_id: &str) -> Result<Option<i64>> {
        inbound::poke_rev(self, source_id, sys_id).await
    }

    async fn adopt_record(&self, adopt: &AdoptRecord) -> Result<()> {
        inbound::adopt_record(self, adopt).await
    }

    async fn adopted_sys_ids(
        &self,
        integration_id: Uuid,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>> {
        inbound::adopted_sys_ids(self, integration_id, since, limit).await
    }
}
