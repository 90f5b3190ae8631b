//! Configuration: YAML text -> raw serde structs ([`raw`]) -> validated
//! [`Config`] ([`validate`]). Nothing outside this module sees raw values, and
//! nothing here touches running state: a file that fails to load changes
//! nothing.

pub mod defaults;
mod error;
pub mod guard;
pub mod http;
pub mod limits;
mod locate;
pub mod model;
mod raw;
pub mod tls;
mod validate;
pub mod values;

use std::path::Path;

pub use self::defaults::DEFAULT_STATE_DIR as STATE_DIR;
pub use error::{ConfigError, Issue};
pub use model::Config;

use self::{locate::Locator, raw::RawConfig};

/// The embedded default: the demo `balancer run` serves with no file.
pub const DEFAULT_YAML: &str = include_str!("../../../config/default.yaml");
/// Name used for the embedded default in error messages.
pub const DEFAULT_NAME: &str = "<embedded default.yaml>";

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// The embedded default config.
pub fn embedded_default() -> Result<Config, ConfigError> {
    parse(DEFAULT_YAML, DEFAULT_NAME)
}

/// Validates `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_yaml_ng::from_str(text).map_err(|e| syntax_error(&e, file))?;
    validate::validate(&raw).map_err(|problems| {
        let locator = Locator::new(text);
        let issues = problems
            .0
            .into_iter()
            .map(|(field, message)| {
                let (line, column) = locator.position(&field);
                Issue {
                    file: file.to_owned(),
                    line,
                    column,
                    field,
                    message,
                }
            })
            .collect();
        ConfigError::Invalid(issues)
    })
}

/// `serde_yaml_ng` renders `path: message at line L column C`; we move the
/// position to the front in our `file:line:column: field: message` shape.
fn syntax_error(e: &serde_yaml_ng::Error, file: &str) -> ConfigError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = e.to_string();
    let text = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let (field, message) = match text.split_once(": ") {
        Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
        _ => (String::new(), text.to_owned()),
    };
    ConfigError::Invalid(vec![Issue {
        file: file.to_owned(),
        line,
        column,
        field,
        message,
    }])
}

#[cfg(test)]
mod bad_cases;
#[cfg(test)]
mod tests;
