//! A form as the user typed it, with the errors to show next to each field: pages
//! re-render from this after a refused POST, so nothing typed is lost. Errors keep the
//! field paths of the services' commands (`when.attributes`, `servicenow.username`);
//! templates look them up by those paths.

use snowbound_core::validate::FieldError;

use super::session::FormData;
use crate::error::ApiError;

#[derive(Default)]
pub struct Typed {
    pub values: FormData,
    pub errors: Vec<FieldError>,
    /// The summary line above the form.
    pub error: Option<String>,
}

/// Every field error of `e`: the list when validation found several, else its one field.
pub fn form_errors(e: &ApiError) -> Vec<FieldError> {
    if e.fields.is_empty() {
        e.field
            .iter()
            .map(|f| FieldError::new(f.clone(), e.message.clone()))
            .collect()
    } else {
        e.fields.clone()
    }
}

impl Typed {
    pub fn new(values: FormData) -> Self {
        Typed {
            values,
            ..Typed::default()
        }
    }

    pub fn refused(values: FormData, e: &ApiError) -> Self {
        Typed {
            values,
            errors: form_errors(e),
            error: Some(e.message.clone()),
        }
    }

    /// [`Self::refused`] for refusals that are already sentences for the user (the
    /// accounts' rules): the summary is the sentence itself, without the field's path.
    pub fn refused_in_words(values: FormData, e: &ApiError) -> Self {
        let mut typed = Typed::refused(values, e);
        for error in &mut typed.errors {
            let prefix = format!("{}: ", error.field);
            if let Some(words) = error.message.strip_prefix(&prefix) {
                error.message = words.to_owned();
            }
        }
        if let Some(first) = typed.errors.first() {
            typed.error = Some(first.message.clone());
        }
        typed
    }

    pub fn v(&self, name: &str) -> String {
        self.values.get(name).unwrap_or_default().to_owned()
    }

    pub fn is(&self, name: &str, value: &str) -> bool {
        self.values.all(name).contains(&value)
    }

    /// The error of `field` or of anything inside it (`then` holds `then.forward_to[0]`).
    pub fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| {
                e.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
            .map(|e| e.message.as_str())
    }
}
