//! The README's "On a fresh machine" section, followed command by command on a clean checkout
//! of this repository (as root, where `sudo` changes nothing): the packages it installs
//! are there, `cargo build --release` builds, the main job runs and ends with the summary the
//! README shows, the installed layout finds its shim, and the commands its prose names work.
//! A command in the section this test does not know fails it, so the two stay in step.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{can_run_real_mode, skip};

const SECTION: &str = "## On a fresh machine";

/// The command lines of the section's ```sh blocks, `\`-continued lines joined.
fn section_commands(readme: &str) -> Vec<String> {
    let start = readme
        .find(SECTION)
        .expect("README has no fresh-machine section");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() && !l.starts_with('#') => {
                // A trailing comment explains the command; it is not part of it.
                let cmd = l.split("  #").next().unwrap_or(l).trim();
                commands.push(cmd.to_string());
            }
            _ => {}
        }
    }
    commands
}

/// The lines of the section's ```text block: what the main job prints at its end.
fn shown_summary(readme: &str) -> Vec<String> {
    let start = readme.find(SECTION).unwrap();
    let block = &readme[start..];
    let block = &block[block.find("```text\n").expect("no ```text block") + 8..];
    block[..block.find("```").unwrap()]
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs one command line with `sh`, as root: `sudo` is a no-op there (a machine without sudo,
/// such as CI's container, gets one that just runs its command).
fn run(dir: &Path, line: &str) -> Output {
    // Beside the checkout, in the test's own folder.
    let bin = dir.parent().expect("the checkout's folder").join("bin");
    if !bin.join("sudo").exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("sudo"), "#!/bin/sh\nexec \"$@\"\n").unwrap();
        std::fs::set_permissions(bin.join("sudo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The cargo that runs this test first on the PATH, for `cargo build`; then the no-op sudo
    // unless the machine has its own.
    let cargo_dir = Path::new(&cargo()).parent().map(Path::to_path_buf);
    let path = std::env::var("PATH").unwrap_or_default();
    let path = match cargo_dir {
        Some(d) => format!("{}:{path}:{}", d.display(), bin.display()),
        None => format!("{path}:{}", bin.display()),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(line)
        .env("PATH", path)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(
        out.status.success(),
        "{line}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// A clean checkout of HEAD, with the test's own build products copied in so that cargo
/// compiles only this crate, not every dependency again.
fn checkout(repo: &Path, into: &Path) -> PathBuf {
    let dir = into.join("p2plab");
    let status = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(repo)
        .arg(&dir)
        .status()
        .expect("git clone");
    assert!(status.success(), "git clone failed");
    let built = repo.join("target/release");
    let target = dir.join("target/release");
    std::fs::create_dir_all(&target).unwrap();
    for part in ["deps", "build", ".fingerprint"] {
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(built.join(part))
            .arg(target.join(part))
            .status()
            .expect("cp");
        assert!(status.success(), "copying {part} failed");
    }
    dir
}

#[test]
fn the_readme_first_real_experiment_works_on_a_clean_checkout() {
    let test = "the_readme_first_real_experiment_works_on_a_clean_checkout";
    if !can_run_real_mode(test) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !repo.join(".git").exists() {
        skip(test, "needs the repository's .git to make a clean checkout");
        return;
    }
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let commands = section_commands(&readme);
    let tmp = tempfile::tempdir().unwrap();
    let dir = checkout(repo, tmp.path());
    let prefix = tmp.path().join("usr-local");
    let mut ran = Vec::new();
    for line in &commands {
        if let Some(packages) = line.strip_prefix("sudo apt-get install -y ") {
            // .ci/run installs them; here they must all be there.
            let missing: Vec<&str> = packages
                .split_whitespace()
                .filter(|p| !installed(p))
                .collect();
            assert!(
                missing.is_empty(),
                "README's packages not installed: {missing:?}"
            );
        } else if line
            == "cargo build --release && sudo ./target/release/p2plab script scripts/churn.rhai"
        {
            let out = run(&dir, line);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            // From the summary's first line on, without a flagged verdict's problem lines
            // (a busy machine may flag the run; the README shows a clean one).
            let from = stdout.rfind("run finished at ").expect("no end summary");
            let end: Vec<&str> = stdout[from..]
                .lines()
                .filter(|l| !l.starts_with("  - "))
                .collect();
            let shown = shown_summary(&readme);
            assert_eq!(end.len(), shown.len(), "{stdout}");
            for (got, want) in end.iter().zip(&shown) {
                let word = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
                assert_eq!(
                    word(got),
                    word(want),
                    "the summary differs from the README's:\n{stdout}"
                );
            }
            let results = end[4].strip_prefix("results: ").expect("a results line");
            assert!(results.starts_with("results/churn-"), "{results}");
            assert!(
                dir.join(results).join("events.jsonl").is_file(),
                "{results}"
            );
            assert!(
                end[2].starts_with("traffic: ") && !end[2].contains(" 0 B "),
                "{stdout}"
            );
        } else if line.starts_with("sudo install -D ") {
            // Into a prefix of the test's, not the machine's /usr/local.
            run(
                &dir,
                &line.replace("/usr/local", &prefix.display().to_string()),
            );
        } else if line == "cargo test --release --workspace" || line.starts_with("cargo bench ") {
            // The test suite itself and the benchmarks: run by CI, not from inside a test.
            continue;
        } else {
            panic!("README has a command this test does not follow: {line}");
        }
        ran.push(line.clone());
    }
    assert!(ran.len() >= 4, "followed only {ran:?}");

    // The installed binary finds the installed shim: a program bound by it sees it preloaded.
    std::fs::write(
        tmp.path().join("shim.rhai"),
        "let n = alloc_ip(1)[0];\nspawn(n, \"sh -c 'echo $LD_PRELOAD'\", #{ stdout: \"preload\" }).wait();\n",
    )
    .unwrap();
    let out_dir = tmp.path().join("shim-out");
    run(
        &dir,
        &format!(
            "{}/bin/p2plab script {} --binding preload -q --out {}",
            prefix.display(),
            tmp.path().join("shim.rhai").display(),
            out_dir.display()
        ),
    );
    let preload = std::fs::read_to_string(out_dir.join("nodes/10.0.0.1/preload")).unwrap();
    assert_eq!(
        preload.trim(),
        prefix
            .join("lib/p2plab/libp2plab_shim.so")
            .display()
            .to_string()
    );

    // The commands the section's prose names.
    for inline in [
        "./target/release/p2plab doctor scripts/churn.rhai",
        "cargo run --release -- script scripts/churn.rhai --dry-run",
    ] {
        assert!(readme.contains(inline), "README no longer says `{inline}`");
        run(&dir, inline);
    }
}

/// The cargo running this test (`sh` may not have it on its PATH).
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
