//! The crate's layers point down only (DESIGN.md, "Layout"): a module may use the modules of
//! the layers below its own, never one of its own layer or above. This reads every source
//! file's `crate::…` paths, so a new upward import fails here, naming the file and line. Also:
//! every `unsafe` block, function and impl (the shim's too) says why it is sound.

use std::path::{Path, PathBuf};

/// Bottom to top. Modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["units", "bpf"],
    &["clock", "interrupt"],
    &["experiment"],
    &["topology"],
    &["dataplane", "netns", "proto", "results"],
    &["worker"],
    &["controller"],
    &["script"],
    &["run", "report"],
    &["attach", "doctor", "graph"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line names as `crate::<module>`, including `use crate::{a, b}`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        // Not `p2plab_crate::` or similar: `crate` must start a path.
        let before = rest[..at].chars().last();
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    found.push(name);
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
        rest = after;
    }
    found
}

#[test]
fn layers_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut checked = 0;
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name")
            .trim_end_matches(".rs")
            .to_string();
        // lib.rs declares the modules; main.rs is the binary, on top of everything.
        if top == "lib" || top == "main" {
            continue;
        }
        let own = layer_of(&top)
            .unwrap_or_else(|| panic!("{}: module {top} has no layer in LAYERS", rel.display()));
        let text = std::fs::read_to_string(file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for used in crate_paths(code) {
                checked += 1;
                if used == top || used.is_empty() {
                    continue;
                }
                match layer_of(&used) {
                    Some(l) if l < own => {}
                    Some(l) => violations.push(format!(
                        "src/{}:{}: {top} (layer {own}) uses crate::{used} (layer {l})",
                        rel.display(),
                        n + 1
                    )),
                    None => violations.push(format!(
                        "src/{}:{}: crate::{used} is in no layer",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} crate paths found: is the parser broken?"
    );
    assert!(
        violations.is_empty(),
        "upward or sideways imports:\n{}",
        violations.join("\n")
    );
}

/// Whether `code` (a line without its comment) opens an unsafe block, fn, impl or extern.
fn opens_unsafe(code: &str) -> bool {
    let mut rest = code;
    while let Some(at) = rest.find("unsafe") {
        let before = rest[..at].chars().last();
        let after = rest[at + "unsafe".len()..].trim_start();
        let word_start = before.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '(');
        let opens = after.is_empty()
            || after.starts_with('{')
            || ["fn ", "impl", "extern"]
                .iter()
                .any(|k| after.starts_with(k));
        if word_start && opens {
            return true;
        }
        rest = &rest[at + "unsafe".len()..];
    }
    false
}

#[test]
fn every_unsafe_says_why_it_is_sound() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("shim/src"), &mut files);
    let mut seen = 0;
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !opens_unsafe(code) {
                continue;
            }
            seen += 1;
            // The reason sits on the line or in the comment block just above the statement,
            // which may have begun a line or two earlier (a `# Safety` section for an unsafe
            // fn, above its attributes).
            let above = lines[..n]
                .iter()
                .rev()
                .enumerate()
                .take_while(|(i, l)| {
                    let t = l.trim_start();
                    *i < 2 || t.starts_with("//") || t.starts_with("#[") || t.is_empty()
                })
                .any(|(_, l)| l.contains("SAFETY") || l.contains("# Safety"));
            if !above && !line.contains("SAFETY") {
                missing.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(root).expect("under root").display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(seen > 10, "only {seen} unsafe found: is the scan broken?");
    assert!(
        missing.is_empty(),
        "unsafe without a SAFETY comment:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_unsafe_scan_sees_blocks_fns_and_impls() {
    assert!(opens_unsafe("    let x = unsafe { f() };"));
    assert!(opens_unsafe("pub unsafe extern \"C\" fn bind("));
    assert!(opens_unsafe("unsafe impl Send for X {}"));
    assert!(!opens_unsafe("#![deny(unsafe_op_in_unsafe_fn)]"));
    assert!(!opens_unsafe("#[unsafe(no_mangle)]"));
}

#[test]
fn the_parser_sees_grouped_and_plain_paths() {
    assert_eq!(
        crate_paths("use crate::{units::Nanos, experiment::Action};"),
        ["units", "experiment"]
    );
    assert_eq!(
        crate_paths("let x = crate::interrupt::requested();"),
        ["interrupt"]
    );
    assert!(crate_paths("use p2plab_crate::x;").is_empty());
}
