//! The checks of names, titles and attributes that every way in shares (API, web UI,
//! alert sources): each refusal is a [`FieldError`] naming the field as the API reports it.

use crate::model::Attributes;
use crate::validate::{check_field, check_text, limits, FieldError};

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A required one-line text (`field`), trimmed, of at most `max_chars` characters.
pub fn checked_required(field: &str, value: &str, max_chars: usize) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    check_field(field, value, max_chars)?;
    Ok(value.to_owned())
}

/// An incident's title, trimmed.
pub fn checked_title(title: &str) -> Result<String, FieldError> {
    checked_required("title", title, limits::TITLE)
}

/// The `name` of a team, token, source or routing rule, trimmed.
pub fn checked_name(name: &str) -> Result<String, FieldError> {
    checked_required("name", name, limits::NAME)
}

/// A bad name is not repeated in the field path: it may be the very text that is wrong.
pub fn check_attributes(attributes: &Attributes) -> Result<(), FieldError> {
    for (name, value) in attributes {
        check_text(name, limits::ATTRIBUTE_NAME).map_err(|message| {
            FieldError::new("attributes", format!("an attribute name {message}"))
        })?;
        check_field(
            &format!("attributes.{name}"),
            value,
            limits::ATTRIBUTE_VALUE,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_titles_are_trimmed_and_required() {
        assert_eq!(checked_title("  Disk full ").unwrap(), "Disk full");
        assert_eq!(checked_name(" ").unwrap_err().field, "name");
        assert_eq!(checked_title("a\u{0}b").unwrap_err().field, "title");
        let long = "x".repeat(limits::NAME + 1);
        assert_eq!(checked_name(&long).unwrap_err().field, "name");
    }

    #[test]
    fn attribute_problems_do_not_repeat_a_bad_name() {
        let bad_name: Attributes = [("a\u{0}".to_owned(), "v".to_owned())].into();
        assert_eq!(check_attributes(&bad_name).unwrap_err().field, "attributes");
        let bad_value: Attributes = [("host".to_owned(), "\u{0}".to_owned())].into();
        assert_eq!(
            check_attributes(&bad_value).unwrap_err().field,
            "attributes.host"
        );
    }
}
