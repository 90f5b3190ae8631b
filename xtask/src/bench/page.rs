//! The one writer of benchmark pages: every benchmark writes its files under
//! `docs/bench/` through a [`Page`]. A page has two parts: everything above
//! [`ANALYSIS`] is regenerated from the run's figures; the analysis below it
//! belongs to a person and is carried over from the page already there (a
//! fresh page gets [`PLACEHOLDER`]). Keeping that rule in one place means no
//! benchmark can overwrite what a person wrote, or write analysis of its own.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Heading of the hand-written part of a benchmark page.
pub const ANALYSIS: &str = "## Analysis";
/// What a fresh page's analysis says until a person writes one.
pub const PLACEHOLDER: &str = "TODO(analysis)\n";

/// One benchmark's files: `docs/bench/{name}.md`, `.json` and any others.
pub struct Page {
    dir: PathBuf,
    name: &'static str,
}

impl Page {
    /// The files of benchmark `name` under `root`'s `docs/bench/`, which is
    /// created if missing.
    pub fn new(root: &Path, name: &'static str) -> Result<Self> {
        Self::at(root.join("docs/bench"), name)
    }

    /// The files of `name` in `dir` (created if missing): for pages that
    /// are not benchmarks, such as `docs/soak.md`.
    pub fn at(dir: PathBuf, name: &'static str) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir, name })
    }

    /// The path of this benchmark's file with extension `ext`.
    pub fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.name))
    }

    /// Writes the raw figures to `{name}.json` and returns its path.
    pub fn write_json(&self, figures: &serde_json::Value) -> Result<PathBuf> {
        let path = self.file("json");
        write(&path, &(serde_json::to_string_pretty(figures)? + "\n"))?;
        Ok(path)
    }

    /// Writes `{name}.json` from `figures` and `{name}.md` from
    /// `generated`, draws `{name}.png` with `xtask/scripts/plot_{name}.py`
    /// from the JSON, and says where they are.
    pub fn publish(&self, root: &Path, figures: &serde_json::Value, generated: &str) -> Result<()> {
        let json = self.write_json(figures)?;
        let md = self.write(generated)?;
        let png = self.file("png");
        crate::shell::status(
            std::process::Command::new(super::proxy::python())
                .arg(root.join(format!("xtask/scripts/plot_{}.py", self.name)))
                .arg(&json)
                .arg(&png),
        )?;
        println!(
            "\nwrote {}, {} and {}",
            md.display(),
            json.display(),
            png.display()
        );
        Ok(())
    }

    /// Writes `{name}.md`: `generated` (title to method), then the analysis
    /// already in the page. Returns its path.
    pub fn write(&self, generated: &str) -> Result<PathBuf> {
        let path = self.file("md");
        let analysis = kept_analysis(&path);
        let mut md = format!("{}\n\n{ANALYSIS}\n\n{analysis}", generated.trim_end());
        if !md.ends_with('\n') {
            md.push('\n');
        }
        write(&path, &md)?;
        Ok(path)
    }
}

/// The analysis already written under [`ANALYSIS`] in the page at `path`,
/// or the placeholder: a re-run rewrites figures, never a person's text.
fn kept_analysis(path: &Path) -> String {
    let previous = std::fs::read_to_string(path).unwrap_or_default();
    previous
        .find(&format!("\n{ANALYSIS}\n"))
        .map(|i| {
            previous[i + ANALYSIS.len() + 2..]
                .trim_start_matches('\n')
                .to_owned()
        })
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| PLACEHOLDER.to_owned())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_analysis() {
        let root = std::env::temp_dir().join(format!("xtask-page-{}", std::process::id()));
        let page = Page::new(&root, "proxy").expect("page");
        let path = page.write("# Figures\n\nfirst run\n").expect("first");
        let first = std::fs::read_to_string(&path).expect("read");
        assert!(first.starts_with("# Figures\n\nfirst run\n\n"), "{first}");
        assert!(
            first.ends_with(&format!("{ANALYSIS}\n\n{PLACEHOLDER}")),
            "{first}"
        );
        let edited = first.replace(PLACEHOLDER, "Splice wins.\n\nMore.\n");
        std::fs::write(&path, edited).expect("edit");
        page.write("# Figures\n\nsecond run\n").expect("second");
        let second = std::fs::read_to_string(&path).expect("read");
        assert!(second.contains("second run") && !second.contains("first run"));
        assert!(second.ends_with(&format!("{ANALYSIS}\n\nSplice wins.\n\nMore.\n")));
        std::fs::remove_dir_all(&root).expect("clean");
    }
}
