//! Configuration: YAML text -> raw serde structs ([`raw`]) -> validated
//! [`Config`] ([`validate`]). Nothing outside this module sees raw values, and
//! nothing here touches running state: a file that fails to load changes
//! nothing.

mod aliases;
pub mod backends_file;
pub mod defaults;
pub mod discover;
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

/// Reads and validates the file at `path`: at most
/// [`limits::MAX_FILE_BYTES`] of UTF-8 text.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = text_of(read_bounded(path)?, &name)?;
    parse(&text, &name)
}

/// Validates a file's `bytes`; `name` names it in errors.
pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Config, ConfigError> {
    parse(&text_of(bytes, name)?, name)
}

/// The bytes of the file at `path`, and one more when it is larger than
/// [`limits::MAX_FILE_BYTES`] (which [`text_of`] refuses), without reading
/// all of a huge one.
fn read_bounded(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, limits::MAX_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(read_err)?;
    Ok(bytes)
}

/// `bytes` (of the file `name`) as text: at most
/// [`limits::MAX_FILE_BYTES`], and UTF-8.
fn text_of(bytes: Vec<u8>, name: &str) -> Result<String, ConfigError> {
    if bytes.len() as u64 > limits::MAX_FILE_BYTES {
        return Err(one_issue(
            name,
            (1, 1),
            String::new(),
            format!(
                "the file is larger than {} MiB, the most a config may be; is this the right file?",
                limits::MAX_FILE_BYTES >> 20
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| not_utf8(&e, name))
}

/// A refusal for one problem in `file`, at `(line, column)`.
fn one_issue(
    file: &str,
    (line, column): (usize, usize),
    field: String,
    message: String,
) -> ConfigError {
    ConfigError::Invalid(vec![Issue {
        file: file.to_owned(),
        line,
        column,
        field,
        message,
    }])
}

/// Where the first byte that is not UTF-8 is, by line and column (in
/// characters, as editors count them).
fn not_utf8(e: &std::string::FromUtf8Error, file: &str) -> ConfigError {
    let bytes = e.as_bytes();
    let good = e.utf8_error().valid_up_to();
    let before = &bytes[..good];
    let line = before.split(|b| *b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    // The bytes up to `good` are valid UTF-8 by definition.
    let column = std::str::from_utf8(&before[line_start..]).map_or(1, |s| s.chars().count() + 1);
    one_issue(
        file,
        (line, column),
        String::new(),
        format!(
            "byte 0x{:02x} is not UTF-8; a config file must be UTF-8 text (re-save it as UTF-8)",
            bytes[good]
        ),
    )
}

/// The embedded default config.
pub fn embedded_default() -> Result<Config, ConfigError> {
    parse(DEFAULT_YAML, DEFAULT_NAME)
}

/// Validates `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = yaml(text, file)?;
    validate::validate(&raw).map_err(|problems| located(problems, text, file))
}

/// The raw form of `text` (of `file`): the alias bound first, then serde.
/// Config files and discovery files are read alike.
fn yaml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    aliases::check(text).map_err(|too| {
        one_issue(
            file,
            (too.line, too.column),
            String::new(),
            format!(
                "aliases here and before copy {} nodes, more than the {} a file may add this way; write the repeated parts out or share fewer of them",
                too.nodes,
                aliases::MAX_ALIAS_NODES
            ),
        )
    })?;
    serde_yaml_ng::from_str(text).map_err(|e| syntax_error(&e, file))
}

/// `problems` found in `text` (of `file`), each at the line and column of
/// its field.
fn located(problems: validate::Problems, text: &str, file: &str) -> ConfigError {
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
}

/// `serde_yaml_ng` renders `path: message at line L column C`; we move the
/// position to the front in our `file:line:column: field: message` shape.
fn syntax_error(e: &serde_yaml_ng::Error, file: &str) -> ConfigError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let text = e.to_string();
    // The parser's own bounds, said in the file's terms.
    let text = match text.as_str() {
        "repetition limit exceeded" => {
            "aliases expand to too many nodes (repetition limit exceeded); write the repeated parts out or use fewer aliases".to_owned()
        }
        t if t.starts_with("recursion limit exceeded") => format!(
            "{t}: the document nests too deeply (more than 128 levels)"
        ),
        _ => text,
    };
    let text = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let (field, message) = match text.split_once(": ") {
        Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
        _ => (String::new(), text.to_owned()),
    };
    one_issue(file, (line, column), field, message)
}

#[cfg(test)]
mod bad_cases;
#[cfg(test)]
mod input_tests;
#[cfg(test)]
mod tests;
