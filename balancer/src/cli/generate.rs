//! `balancer generate`: man pages and shell completions made from the clap
//! definitions in [`super::args`], so they never drift from `--help`.
//! Hidden from `--help`; `cargo xtask dist` runs it to build the package.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

use super::{Cli, Generated};

/// Writes `what` into `out`; returns the files written, one per line.
pub(crate) fn generate(what: Generated, out: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot make `{}`", out.display()))?;
    let mut cmd = Cli::command();
    let written = match what {
        Generated::Man => man(&cmd, out)?,
        Generated::Bash | Generated::Zsh | Generated::Fish => {
            let shell = match what {
                Generated::Bash => Shell::Bash,
                Generated::Zsh => Shell::Zsh,
                _ => Shell::Fish,
            };
            vec![
                clap_complete::generate_to(shell, &mut cmd, "balancer", out)
                    .with_context(|| format!("cannot write {shell} completions"))?
                    .display()
                    .to_string(),
            ]
        }
    };
    Ok(written.join("\n") + "\n")
}

/// `balancer.1`, then `balancer-<sub>.1` for every visible subcommand.
fn man(cmd: &clap::Command, out: &Path) -> anyhow::Result<Vec<String>> {
    let mut written = Vec::new();
    // Pages are named `balancer-run` (as git's are); their synopsis reads
    // `balancer run`.
    let mut page = |name: String, cmd: clap::Command| -> anyhow::Result<()> {
        let path = out.join(format!("{name}.1"));
        let mut text = Vec::new();
        let bin = name.replacen('-', " ", 1);
        clap_mangen::Man::new(cmd.name(name.clone()).display_name(name).bin_name(bin))
            .render(&mut text)
            .context("cannot render a man page")?;
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    page("balancer".to_owned(), cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(format!("balancer-{}", sub.get_name()), sub.clone())?;
    }
    Ok(written)
}
