//! Writes the man pages and shell completions of `hnvswitch` and `hnvctl`
//! from their own clap definitions (the binaries' sources are compiled in
//! here as modules, so the pages never drift from the options):
//!
//! ```text
//! cargo run --example gendoc -- OUT
//! OUT/man/hnvswitch.1, hnvswitch-run.1, ..., hnvctl.1, hnvctl-show.1, ...
//! OUT/completions/bash/{hnvswitch,hnvctl}
//! OUT/completions/zsh/{_hnvswitch,_hnvctl}
//! OUT/completions/fish/{hnvswitch,hnvctl}.fish
//! ```
//!
//! `scripts/package.sh` runs it before `cargo deb`, which installs the
//! files (see `[package.metadata.deb]` in Cargo.toml).

#[allow(dead_code)]
#[path = "../src/bin/hnvswitch.rs"]
mod hnvswitch_bin;

#[allow(dead_code)]
#[path = "../src/bin/hnvctl.rs"]
mod hnvctl_bin;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Write every page and completion file of `cmd` under `out`.
fn write(cmd: clap::Command, out: &Path) -> Result<()> {
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| man.display().to_string())?;
    // One page for the command and one for each subcommand (`hnvctl-show.1`, ...).
    clap_mangen::generate_to(cmd.clone(), &man).with_context(|| format!("man pages into {}", man.display()))?;
    let name = cmd.get_name().to_string();
    // The names each shell looks for: bash-completion loads completions/NAME on
    // first use, zsh's fpath holds _NAME, fish's vendor_completions.d NAME.fish.
    for (shell, dir, file) in [(Shell::Bash, "bash", name.clone()), (Shell::Zsh, "zsh", format!("_{name}")), (Shell::Fish, "fish", format!("{name}.fish"))] {
        let dir = out.join("completions").join(dir);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let path = dir.join(file);
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut text);
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out] = args.as_slice() else { bail!("usage: gendoc OUT_DIR") };
    let out = PathBuf::from(out);
    write(hnvswitch_bin::Cli::command(), &out)?;
    write(hnvctl_bin::Cli::command(), &out)?;
    println!("man pages and completions in {}", out.display());
    Ok(())
}
