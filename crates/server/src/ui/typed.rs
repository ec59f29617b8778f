//! A form as the user typed it, with the errors to show next to each field: pages
//! re-render from this after a refused POST, so nothing typed is lost.

use snowbound_core::validate::FieldError;

use super::integrations::form_errors;
use super::session::FormData;
use crate::error::ApiError;

#[derive(Default)]
pub struct Typed {
    pub values: FormData,
    pub errors: Vec<FieldError>,
    /// The summary line above the form.
    pub error: Option<String>,
}

impl Typed {
    pub fn new(values: FormData) -> Self {
        Typed {
            values,
            ..Typed::default()
        }
    }

    /// `rename` maps the API's field paths (by prefix) to the form's field names.
    pub fn refused(values: FormData, e: &ApiError, rename: &[(&str, &str)]) -> Self {
        let errors = form_errors(e)
            .into_iter()
            .map(|mut fe| {
                if let Some((_, to)) = rename.iter().find(|(from, _)| fe.field.starts_with(from)) {
                    fe.field = (*to).to_owned();
                }
                fe
            })
            .collect();
        Typed {
            values,
            errors,
            error: Some(e.message.clone()),
        }
    }

    pub fn v(&self, name: &str) -> String {
        self.values.get(name).unwrap_or_default().to_owned()
    }

    pub fn is(&self, name: &str, value: &str) -> bool {
        self.values.all(name).contains(&value)
    }

    pub fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}
