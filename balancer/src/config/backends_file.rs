//! A discovery file (`pools[].discover.file`): a `backends:` list in the
//! config's own form, checked by the same rules and refused with the same
//! `file:line:column` positions.

use std::path::Path;

use super::{ConfigError, discover::Origin, model::Backend, raw::RawBackendsFile, validate};

/// Reads and checks the discovery file at `path`; its backends carry
/// [`Origin::File`].
pub fn load(path: &Path) -> Result<Vec<Backend>, ConfigError> {
    let name = path.display().to_string();
    let text = super::text_of(super::read_bounded(path)?, &name)?;
    parse(&text, &name)
}

/// Checks a discovery file's `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Backend>, ConfigError> {
    // A file with nothing in it is more often one being written (or
    // truncated by mistake) than a wish to empty the pool, which
    // `backends: []` says.
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#')
    }) {
        return Err(super::one_issue(
            file,
            (1, 1),
            String::new(),
            "the file is empty; write `backends: []` to empty the pool".to_owned(),
        ));
    }
    let raw: RawBackendsFile = super::yaml(text, file)?;
    let backends =
        validate::backends_file(&raw).map_err(|problems| super::located(problems, text, file))?;
    Ok(backends
        .into_iter()
        .map(|b| Backend {
            origin: Origin::File,
            ..b
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_backends_with_weights() {
        let set = parse(
            "backends:\n  - address: 198.18.0.1:80\n  - address: '[fd00::2]:80'\n    weight: 5\n",
            "web.yaml",
        )
        .expect("valid");
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].weight, 100);
        assert_eq!(set[1].weight, 5);
        assert_eq!(set[1].address, "[fd00::2]:80".parse().unwrap());
    }

    #[test]
    fn only_an_explicit_empty_list_empties_the_set() {
        assert!(parse("backends: []\n", "f").expect("empty").is_empty());
        for blank in ["", "\n", "# nothing yet\n"] {
            let err = parse(blank, "f").unwrap_err().to_string();
            assert!(err.contains("backends: []"), "{err}");
        }
    }

    #[test]
    fn a_bad_entry_is_refused_with_its_position() {
        let err = parse(
            "backends:\n  - address: 198.18.0.1:80\n  - address: nowhere\n",
            "web.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("web.yaml:3:"), "{err}");
        assert!(err.contains("backends[1].address"), "{err}");
        let err = parse("backends:\n  - adress: 198.18.0.1:80\n", "web.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("web.yaml:2:"), "{err}");
        assert!(err.contains("adress"), "{err}");
        let err = parse(
            "backends:\n  - address: 198.18.0.1:80\n  - address: 198.18.0.1:80\n",
            "web.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("appears twice"), "{err}");
    }
}
