//! The limits that keep a script from exhausting the machine: the size of one string, array or
//! map, how deep functions may call each other, pending callbacks, and (in `mod.rs`) operations
//! between sleeps. Rhai enforces the first two; this file sets them and says, in the user's
//! words, which one a script ran into. Callbacks are counted by `api::time`; processes running
//! at once are limited by the lab (`controller`).
//!
//! Rhai checks a size after the operation that grew it, so `s += s` stops at the first string
//! past the limit, having allocated at most twice the limit. The data limits are fixed: no
//! scenario needs more (a script holds commands, addresses, samples, not bulk data), and a
//! higher one could not be chosen safely without knowing the machine's memory.

use rhai::{Engine, EvalAltResult};

/// Bytes of one string; the strings inside one array or map count together. A command line
/// or log line is a few KiB at most; 16 MiB (32 MiB when `s += s` crosses it) is nothing to
/// the machine.
pub const MAX_STRING_SIZE: usize = 16 << 20;

/// Elements of one array or bytes of one blob, counting the elements of arrays and maps
/// nested in it. A million: the nodes of a hundred machines at the `max_procs` default, or a
/// day of arrival times at ten a second, is 16 MB of values; at the limit, `a += a` peaks near
/// 100 MB (measured). Labs beyond it allocate nodes in batches and name them by group.
pub const MAX_ARRAY_SIZE: usize = 1_000_000;

/// Entries of one object map, counting those of maps nested in it: as many as an array, so
/// a map keyed by node fits wherever the node list does.
pub const MAX_MAP_SIZE: usize = 1_000_000;

/// `at`/`every` callbacks pending at once. One per node of the largest node list, as churn
/// schedules them; each costs some 500 bytes (measured), so `at` in a loop that never sleeps
/// stops near 550 MB instead of running on to the operations limit, 16 million callbacks.
pub const MAX_CALLBACKS: usize = 1_000_000;

/// Script functions calling each other (recursion, callbacks calling functions). Rhai's
/// release default; a real stack overflow would abort the process instead, so the script
/// thread's stack is sized for it (`SCRIPT_STACK`).
pub const MAX_CALL_LEVELS: usize = 64;

/// Stack of the thread that runs the script. At 64 levels, the deepest nesting the parser
/// allows inside a function (`set_max_expr_depths`) took up to 16 MiB in a debug build
/// (measured): more than the main thread's 8 MiB or a test thread's 2 MiB, where it aborted.
/// Four times that; the memory is only reserved until a script goes that deep.
pub const SCRIPT_STACK: usize = 64 << 20;

/// Sets the data and call limits on `engine`.
pub fn apply(engine: &mut Engine) {
    engine.set_max_string_size(MAX_STRING_SIZE);
    engine.set_max_array_size(MAX_ARRAY_SIZE);
    engine.set_max_map_size(MAX_MAP_SIZE);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
}

/// What a limit error means and which limit it was; `None` for other errors.
pub fn explain(err: &EvalAltResult) -> Option<String> {
    let fixed = "a fixed limit that keeps a script from exhausting the machine's memory";
    Some(match err {
        // Rhai names the kind of value in its own words; these are all it uses.
        EvalAltResult::ErrorDataTooLarge(what, _) if what.contains("string") => format!(
            "a string grew past the limit of {} (max_string_size; the strings in one array \
             or map count together): a string that doubles in a loop? ({fixed})",
            mib(MAX_STRING_SIZE)
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) if what.contains("map") => format!(
            "a map grew past the limit of {MAX_MAP_SIZE} entries (max_map_size; nested maps \
             count their entries too): a map that grows in a loop? ({fixed})"
        ),
        EvalAltResult::ErrorDataTooLarge(..) => format!(
            "an array or blob grew past the limit of {MAX_ARRAY_SIZE} elements \
             (max_array_size; nested arrays and maps count their elements too): an array \
             that grows in a loop? ({fixed})"
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "functions called each other more than {MAX_CALL_LEVELS} deep (max_call_levels): \
             a recursion that never ends? (a fixed limit; loop instead of recursing)"
        ),
        _ => return None,
    })
}

fn mib(bytes: usize) -> String {
    format!("{} MiB", bytes >> 20)
}
