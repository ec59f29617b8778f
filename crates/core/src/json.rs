//! JSON bodies from the network, parsed with errors that name the JSON path of the
//! culprit, so a typo'd key never silently vanishes. The HTTP layer turns a
//! [`BodyError`] into its answer (400 for unparseable JSON, 422 for a bad value).

use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyErrorKind {
    /// Not JSON at all (HTTP 400 `invalid_json`); `field` is where it broke, if known.
    Malformed,
    /// JSON of the wrong shape with no field to blame (HTTP 422 `invalid_body`).
    InvalidBody,
    /// A field's value is wrong (HTTP 422 `invalid_field`); `field` is its dotted path.
    InvalidField,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BodyError {
    pub kind: BodyErrorKind,
    pub field: Option<String>,
    /// Without the field path in front.
    pub message: String,
}

impl BodyError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        BodyError {
            kind: BodyErrorKind::InvalidField,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The HTTP status the error stands for: 400 when the body is not JSON, else 422.
    pub fn status(&self) -> u16 {
        match self.kind {
            BodyErrorKind::Malformed => 400,
            BodyErrorKind::InvalidBody | BodyErrorKind::InvalidField => 422,
        }
    }
}

impl From<crate::validate::FieldError> for BodyError {
    fn from(e: crate::validate::FieldError) -> Self {
        BodyError::field(e.field, e.message)
    }
}

/// Parses `bytes` as `T`; errors name the JSON path of the culprit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| json_error(".".into(), e))?;
    Ok(value)
}

/// Deserializes an already-parsed value (a merged PATCH), naming the bad path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, BodyError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

fn path_error(err: serde_path_to_error::Error<serde_json::Error>) -> BodyError {
    let path = err.path().to_string();
    json_error(path, err.into_inner())
}

fn json_error(path: String, inner: serde_json::Error) -> BodyError {
    let message = strip_position(&inner);
    if !inner.is_data() {
        return BodyError {
            kind: BodyErrorKind::Malformed,
            field: (path != ".").then_some(path),
            message: format!("malformed JSON: {message}"),
        };
    }
    // serde reports a missing key at the enclosing object, so the key itself comes from
    // the message; an unknown key is already the last segment of the path.
    let key = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (path.as_str(), key) {
        (".", Some(key)) => key.to_owned(),
        (".", None) => String::new(),
        (path, Some(key)) if path == key || path.ends_with(&format!(".{key}")) => path.to_owned(),
        (path, Some(key)) => format!("{path}.{key}"),
        (path, None) => path.to_owned(),
    };
    if field.is_empty() {
        return BodyError {
            kind: BodyErrorKind::InvalidBody,
            field: None,
            message,
        };
    }
    BodyError::field(field, message)
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if err.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn err(body: &str) -> BodyError {
        parse_json::<Body>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_name_the_path_and_say_what_kind_they_are() {
        assert_eq!(err("{").kind, BodyErrorKind::Malformed);
        assert_eq!(err("{").status(), 400);
        assert_eq!(err("{}").field.as_deref(), Some("name"));
        assert_eq!(err(r#"{"name":"a","nme":1}"#).field.as_deref(), Some("nme"));
        let nested = err(r#"{"name":"a","inner":{"count":"x"}}"#);
        assert_eq!(nested.field.as_deref(), Some("inner.count"));
        assert_eq!(nested.status(), 422);
        assert_eq!(err("[]").kind, BodyErrorKind::InvalidBody);
        assert_eq!(err(r#"{"name":"a"} x"#).kind, BodyErrorKind::Malformed);
    }
}
