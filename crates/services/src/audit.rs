//! Records every change to integrations, sources, rules, tokens and users, and lists
//! them for the admin. An event is written right after the change's own commit rather
//! than inside its transaction: the store's writes each own their transaction (several
//! are shared with the engine and batch paths), and threading an audit row through all
//! of them would couple the trail to every store method. The cost is that a crash
//! between the two commits loses that one event; a failed audit write is logged and
//! does not undo or fail a change that has already happened.

use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use snowbound_core::audit::{self, AuditEvent, NewAuditEvent};
use snowbound_store::{AuditFilter, Store};

use crate::caller::Caller;
use crate::error::ServiceResult;

/// At most this many events per page of `list`.
pub const MAX_PAGE: u32 = 1000;

#[derive(Clone)]
pub struct AuditService {
    store: Arc<dyn Store>,
}

/// The serialized form of an object, for diffing (`Value::Null` when it did not exist).
pub fn snapshot<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

impl AuditService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        AuditService { store }
    }

    /// Records `action` on an object with the diff of its forms before and after (secrets
    /// masked by `core::audit`). `extra_secrets` names secrets kept apart from the object
    /// (field, whether it had one, whether it has one now).
    pub async fn record(
        &self,
        actor: &str,
        object_type: &'static str,
        object_id: impl ToString,
        action: &'static str,
        before_after: (&Value, &Value),
        extra_secrets: &[(&str, bool, bool)],
    ) {
        let object = (object_type, object_id.to_string());
        record(
            &*self.store,
            actor,
            object,
            action,
            before_after,
            extra_secrets,
        )
        .await
    }

    /// Newest first; the admin's only.
    pub async fn list(
        &self,
        caller: &Caller,
        mut filter: AuditFilter,
    ) -> ServiceResult<Vec<AuditEvent>> {
        caller.require_admin()?;
        filter.limit = Some(filter.limit.unwrap_or(100).clamp(1, MAX_PAGE));
        Ok(self.store.list_audit(&filter).await?)
    }
}

/// [`AuditService::record`] for a caller holding only the store (the first admin, made
/// at start-up).
pub async fn record(
    store: &dyn Store,
    actor: &str,
    (object_type, object_id): (&'static str, String),
    action: &'static str,
    (before, after): (&Value, &Value),
    extra_secrets: &[(&str, bool, bool)],
) {
    let mut changes = audit::diff(before, after);
    for (field, had, has) in extra_secrets {
        audit::record_secret(&mut changes, field, *had, *has);
    }
    let event = NewAuditEvent {
        at: Utc::now(),
        actor: actor.to_owned(),
        object_type,
        object_id,
        action,
        changes,
    };
    if let Err(error) = store.record_audit(&event).await {
        tracing::warn!(%error, object_type, action, "could not record an audit event");
    }
}
