//! Snowbound's domain, free of IO: incidents and their lifecycle, integrations, the
//! decision of which integrations an incident reaches, the parsers of alert bodies, and
//! the pure mapping from an incident to the ServiceNow fields that should hold it. The
//! engine and the preview endpoint both call [`sync::servicenow_fields`] and
//! [`sync::plan_sync`], so what a user previews is exactly what the engine sends.

pub mod audit;
pub mod auth;
pub mod checks;
pub mod forwarding;
pub mod inbound;
pub mod ingest;
pub mod instance_url;
pub mod integration_limits;
pub mod json;
pub mod lifecycle;
pub mod login_limits;
pub mod mapping;
pub mod model;
pub mod routing;
pub mod source;
pub mod sync;
pub mod validate;

pub use auth::{Credentials, SecretKind, ServiceNowAuth};
pub use model::*;
pub use sync::{
    incident_url, mapped_fields, plan_sync, servicenow_fields, Desired, FieldMap, SyncPlan,
    STATE_FIELD,
};
