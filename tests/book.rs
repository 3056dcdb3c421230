//! Every ```rhai and ```lua block of the script book (`book/src/*.md`) runs through `p2plab
//! check`, the dry-run a student would use: plain blocks must pass, `should_fail` blocks must
//! stop with a script error, `ignore` blocks (fragments) are skipped. A ```lua block right
//! after a ```rhai block is its twin: both, dry-run with the same seed, must write the same
//! events byte for byte.

use std::path::{Path, PathBuf};

use p2plab::run::{self, RunConfig, RunError};
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Pass,
    Fail,
    Skip,
}

struct Block {
    chapter: PathBuf,
    /// "rhai" or "lua": the script's extension.
    lang: &'static str,
    /// Line of the opening fence, from 1.
    line: usize,
    expect: Expect,
    code: String,
}

/// Reads the info string of a fence: `rhai`, `rhai,ignore`, `rhai,should_fail` (commas or
/// spaces between words), and the same for `lua`. `None` for blocks in another language.
fn expectation(info: &str) -> Option<Expect> {
    language(info).map(|(_, e)| e)
}

fn language(info: &str) -> Option<(&'static str, Expect)> {
    let mut words = info
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty());
    let lang = match words.next() {
        Some("rhai") => "rhai",
        Some("lua") => "lua",
        _ => return None,
    };
    let mut expect = Expect::Pass;
    for word in words {
        match word {
            "ignore" => expect = Expect::Skip,
            "should_fail" if expect != Expect::Skip => expect = Expect::Fail,
            _ => {}
        }
    }
    Some((lang, expect))
}

fn blocks_of(chapter: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(chapter)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", chapter.display()));
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    for (event, range) in Parser::new(&text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                current = language(&info).map(|(lang, expect)| Block {
                    chapter: chapter.to_path_buf(),
                    lang,
                    line: line_of(range.start),
                    expect,
                    code: String::new(),
                });
            }
            Event::Text(t) => {
                if let Some(block) = current.as_mut() {
                    block.code.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            _ => {}
        }
    }
    blocks
}

fn chapters() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("book")
        .join("src");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", src.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

/// The example data book blocks name, and the folder each goes to: the repository's, as a
/// reader in `scripts/` would name them (`traces/lte-like.down`, `data/world.gml`), and the
/// book's own graphs (`data/campus.gml`).
const DATA: &[(&str, &str)] = &[
    ("scripts/traces", "traces"),
    ("scripts/data", "data"),
    ("book/src/data", "data"),
];

/// Copies the example data folders into `dir`.
fn copy_data(dir: &Path) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (source, name) in DATA {
        let from = root.join(source);
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        let to = dir.join(name);
        std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("{}: {e}", from.display()))?
                .path();
            if let Some(file) = path.file_name().filter(|_| path.is_file()) {
                std::fs::copy(&path, to.join(file))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Runs one block in its own folder (so `import` finds only the stdlib), with the example
/// data next to it; `Err` says why it did not behave as its fence promised.
fn check_block(block: &Block, index: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    copy_data(dir.path())?;
    let stem = block
        .chapter
        .file_stem()
        .map_or("block".into(), |s| s.to_string_lossy());
    let script = dir
        .path()
        .join(format!("{stem}-{}-{index}.{}", block.line, block.lang));
    std::fs::write(&script, &block.code).map_err(|e| format!("write: {e}"))?;
    let result = run::check(&RunConfig::new(&script));
    match (block.expect, result) {
        (Expect::Pass, Ok(_)) => Ok(()),
        (Expect::Pass, Err(e)) => Err(format!("expected to pass, failed with: {e}")),
        (Expect::Fail, Err(RunError::Script(_))) => Ok(()),
        (Expect::Fail, Err(e)) => Err(format!(
            "marked should_fail, but failed with a non-script error: {e}"
        )),
        (Expect::Fail, Ok(_)) => Err("marked should_fail, but it passed".into()),
        (Expect::Skip, _) => Ok(()),
    }
}

#[test]
fn every_rhai_block_of_the_book_runs_in_dry_run() {
    let blocks: Vec<Block> = chapters().iter().flat_map(|c| blocks_of(c)).collect();
    assert!(
        !blocks.is_empty(),
        "no ```rhai or ```lua blocks found under book/src: is the book there?"
    );
    let mut failures = Vec::new();
    let (mut passed, mut failed_as_expected, mut skipped) = (0, 0, 0);
    for (i, block) in blocks.iter().enumerate() {
        if block.expect == Expect::Skip {
            skipped += 1;
            continue;
        }
        match check_block(block, i) {
            Ok(()) if block.expect == Expect::Pass => passed += 1,
            Ok(()) => failed_as_expected += 1,
            Err(why) => failures.push(format!(
                "{}:{}: {why}\n--- block ---\n{}",
                block.chapter.display(),
                block.line,
                block.code.trim_end()
            )),
        }
    }
    let lua = blocks.iter().filter(|b| b.lang == "lua").count();
    eprintln!(
        "book: {} blocks ({} rhai, {lua} lua): {passed} passed, {failed_as_expected} failed as \
         expected, {skipped} ignored",
        blocks.len(),
        blocks.len() - lua
    );
    assert!(
        failures.is_empty(),
        "{} book block(s) misbehaved:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The events a block writes in a dry-run with seed 1, from a file named `twin.EXT` (the
/// `start` event names the scenario by its stem, the same for both twins).
fn events_of(block: &Block) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    copy_data(dir.path())?;
    let script = dir.path().join(format!("twin.{}", block.lang));
    std::fs::write(&script, &block.code).map_err(|e| format!("write: {e}"))?;
    let mut cfg = RunConfig::new(&script);
    cfg.seed = Some(1);
    cfg.out = Some(dir.path().join("out"));
    run::dry_run(cfg).map_err(|e| e.to_string())?;
    std::fs::read(dir.path().join("out/events.jsonl")).map_err(|e| e.to_string())
}

#[test]
fn twin_blocks_write_the_same_events() {
    let mut twins = 0;
    let mut failures = Vec::new();
    for chapter in chapters() {
        let blocks = blocks_of(&chapter);
        for pair in blocks.windows(2) {
            let (rhai, lua) = (&pair[0], &pair[1]);
            if rhai.lang != "rhai" || lua.lang != "lua" || lua.expect != Expect::Pass {
                continue;
            }
            twins += 1;
            let place = format!("{}:{}", chapter.display(), lua.line);
            match (events_of(rhai), events_of(lua)) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(_), Ok(_)) => {
                    failures.push(format!("{place}: other events than its Rhai twin"))
                }
                (Err(e), _) | (_, Err(e)) => failures.push(format!("{place}: {e}")),
            }
        }
    }
    eprintln!("book: {twins} pairs of twin blocks");
    assert!(twins > 0, "no ```lua block follows a ```rhai block");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fence_info_strings() {
    assert_eq!(expectation("rhai"), Some(Expect::Pass));
    assert_eq!(expectation("rhai,should_fail"), Some(Expect::Fail));
    assert_eq!(expectation("rhai, ignore"), Some(Expect::Skip));
    assert_eq!(expectation("rhai ignore should_fail"), Some(Expect::Skip));
    assert_eq!(expectation("rust"), None);
    assert_eq!(expectation("rhaix"), None);
    assert_eq!(language("lua,should_fail"), Some(("lua", Expect::Fail)));
    assert_eq!(expectation(""), None);
}
