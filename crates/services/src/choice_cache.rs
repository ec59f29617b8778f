//! The in-memory cache of ServiceNow choice lists per integration and field. It lives
//! with the services because changing an integration's settings must empty it: new
//! settings may point at another instance, user or table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use snowbound_servicenow::Choice;
use uuid::Uuid;

/// Long enough that a form opening four dropdowns asks ServiceNow once per field, short
/// enough that an admin's change in ServiceNow shows up without a refresh.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// (integration, field) → when fetched, the active choices.
type Entries = HashMap<(Uuid, String), (Instant, Vec<Choice>)>;

#[derive(Default)]
pub struct ChoiceCache {
    entries: Mutex<Entries>,
}

impl ChoiceCache {
    pub fn get(&self, integration: Uuid, field: &str) -> Option<Vec<Choice>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&(integration, field.to_owned()))
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, choices)| choices.clone())
    }

    pub fn put(&self, integration: Uuid, field: &str, choices: Vec<Choice>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        entries.insert((integration, field.to_owned()), (Instant::now(), choices));
    }

    /// New settings may point at another instance, user or table.
    pub fn invalidate(&self, integration: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(id, _), _| *id != integration);
    }
}
