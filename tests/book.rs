//! Every ```rhai and ```lua block of the script book (`book/src/*.md`) runs through `p2plab
//! check`, the dry-run a student would use: plain blocks must pass, `should_fail` blocks must
//! stop with a script error, `ignore` blocks (fragments) are skipped. A ```lua block right
//! after a ```rhai block is its twin: both, dry-run with the same seed, must write the same
//! events byte for byte, or, marked `should_fail`, stop at the same line with the same error.
//! In the reference and the tutorial every ```rhai block has its twin.

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

/// How a block's dry-run with seed 1 ended: the bytes of its events, or its script error.
enum Outcome {
    Events(Vec<u8>),
    Failed(String),
}

/// Dry-runs a block with seed 1 as `dir/twin.EXT`, its results in `dir/out-EXT`. Both twins
/// run in the same folder, so `script_dir()` is the same for both, and the `start` event
/// names the scenario by its stem, `twin`, for both. `Err` for a failure that is not the
/// script's.
fn dry_run_twin(block: &Block, dir: &Path) -> Result<Outcome, String> {
    let script = dir.join(format!("twin.{}", block.lang));
    std::fs::write(&script, &block.code).map_err(|e| format!("write: {e}"))?;
    let out = dir.join(format!("out-{}", block.lang));
    let mut cfg = RunConfig::new(&script);
    cfg.seed = Some(1);
    cfg.out = Some(out.clone());
    match run::dry_run(cfg) {
        Ok(_) => std::fs::read(out.join("events.jsonl"))
            .map(Outcome::Events)
            .map_err(|e| format!("events.jsonl: {e}")),
        Err(RunError::Script(e)) => Ok(Outcome::Failed(e.to_string())),
        Err(e) => Err(format!("not a script error: {e}")),
    }
}

/// A twin's error as both languages must give it: the line of its place and the text after
/// it. The error starts with `twin.EXT:line:col: ` (Rhai, and Lua when the primitive's name
/// stands once in its line) or `twin.EXT:line: `; the places of its `called from` lines are
/// cut to `twin:line` alike, since Lua's columns are not Rhai's. `None` without a place.
fn error_after_place(err: &str, dir: &Path, ext: &str) -> Option<(usize, String)> {
    let text = err.replace(&format!("{}/", dir.display()), "");
    let mut out = String::new();
    let mut rest = text.as_str();
    let file = format!("twin.{ext}:");
    while let Some(i) = rest.find(&file) {
        out.push_str(&rest[..i]);
        rest = &rest[i + file.len()..];
        let line_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        out.push_str(&format!("twin:{}", &rest[..line_end]));
        rest = &rest[line_end..];
        // An optional `:col`, not followed by more text of the message.
        if let Some(after) = rest.strip_prefix(':') {
            let col_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if col_end > 0 {
                rest = &after[col_end..];
            }
        }
    }
    out.push_str(rest);
    let place = out.strip_prefix("twin:")?;
    let (line, message) = place.split_once(':')?;
    Some((line.parse().ok()?, message.trim_start().to_string()))
}

/// The first differing line of two texts, to say where two twins part.
fn first_difference(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    format!(
        "line {}:\n  rhai: {}\n  lua:  {}",
        i + 1,
        a.get(i).unwrap_or(&"(end)"),
        b.get(i).unwrap_or(&"(end)")
    )
}

/// Compares one pair of twins: the same events for blocks that pass, the same error (its
/// line and the text after its place) for `should_fail` blocks.
fn compare_twins(rhai: &Block, lua: &Block) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    copy_data(dir.path())?;
    let a = dry_run_twin(rhai, dir.path()).map_err(|e| format!("the Rhai twin: {e}"))?;
    let b = dry_run_twin(lua, dir.path()).map_err(|e| format!("the Lua twin: {e}"))?;
    match (rhai.expect, a, b) {
        (Expect::Pass, Outcome::Events(a), Outcome::Events(b)) => {
            if a == b {
                return Ok(());
            }
            let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
            Err(format!(
                "other events than its Rhai twin, from events.jsonl {}",
                first_difference(&a, &b)
            ))
        }
        (Expect::Fail, Outcome::Failed(a), Outcome::Failed(b)) => {
            let place = |err: &str, ext| {
                error_after_place(err, dir.path(), ext)
                    .ok_or_else(|| format!("an error without a place: {err}"))
            };
            let (a, b) = (place(&a, "rhai")?, place(&b, "lua")?);
            if a.0 != b.0 {
                return Err(format!(
                    "fails at line {} where its Rhai twin fails at line {}",
                    b.0, a.0
                ));
            }
            if a.1 != b.1 {
                return Err(format!(
                    "another error than its Rhai twin, at {}",
                    first_difference(&a.1, &b.1)
                ));
            }
            Ok(())
        }
        (_, Outcome::Failed(e), _) => Err(format!("the Rhai twin failed: {e}")),
        (_, _, Outcome::Failed(e)) => Err(format!("failed: {e}")),
        (_, Outcome::Events(_), Outcome::Events(_)) => {
            Err("marked should_fail, but both twins passed".into())
        }
    }
}

/// The chapters where every ```rhai block must be followed by its ```lua twin.
const BILINGUAL: &[&str] = &["reference.md", "tutorial.md"];

#[test]
fn twin_blocks_write_the_same_events() {
    let (mut events, mut errors, mut ignored) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut untwinned = Vec::new();
    for chapter in chapters() {
        let blocks = blocks_of(&chapter);
        let bilingual = chapter
            .file_name()
            .is_some_and(|n| BILINGUAL.iter().any(|b| n == *b));
        for (i, rhai) in blocks.iter().enumerate() {
            if rhai.lang != "rhai" {
                continue;
            }
            let Some(lua) = blocks.get(i + 1).filter(|b| b.lang == "lua") else {
                if bilingual {
                    untwinned.push(format!("{}:{}", chapter.display(), rhai.line));
                }
                continue;
            };
            let place = format!("{}:{}", chapter.display(), lua.line);
            match (rhai.expect, lua.expect) {
                (Expect::Skip, _) | (_, Expect::Skip) => ignored += 1,
                (a, b) if a != b => failures.push(format!(
                    "{place}: the Lua twin is marked {b:?}, its Rhai twin {a:?}"
                )),
                (expect, _) => {
                    match compare_twins(rhai, lua) {
                        Ok(()) => {}
                        Err(why) => failures.push(format!("{place}: {why}")),
                    }
                    match expect {
                        Expect::Fail => errors += 1,
                        _ => events += 1,
                    }
                }
            }
        }
    }
    eprintln!(
        "book: {} pairs of twin blocks: {events} compared by their events, {errors} by their \
         errors, {ignored} ignored; {} rhai block(s) of {} without a Lua twin",
        events + errors + ignored,
        untwinned.len(),
        BILINGUAL.join(" and ")
    );
    assert!(events > 0, "no ```lua block follows a ```rhai block");
    failures.extend(untwinned.iter().map(|place| {
        format!(
            "{place}: no ```lua twin right after it (the reference and the tutorial show \
             both languages)"
        )
    }));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn twin_errors_are_compared_after_their_place() {
    let dir = Path::new("/tmp/x");
    let rhai = "/tmp/x/twin.rhai:1:10: sleep: cannot sleep\n  called from /tmp/x/twin.rhai:2:1 \
                (callback)";
    let lua = "/tmp/x/twin.lua:1: sleep: cannot sleep\n  called from /tmp/x/twin.lua:2 (callback)";
    let expected = (
        1,
        "sleep: cannot sleep\n  called from twin:2 (callback)".to_string(),
    );
    assert_eq!(error_after_place(rhai, dir, "rhai"), Some(expected.clone()));
    assert_eq!(error_after_place(lua, dir, "lua"), Some(expected));
    assert_eq!(
        error_after_place(
            "/tmp/x/twin.lua:12:3: at: 5:00 is not a duration",
            dir,
            "lua"
        ),
        Some((12, "at: 5:00 is not a duration".to_string()))
    );
    assert_eq!(error_after_place("no place: here", dir, "lua"), None);
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
