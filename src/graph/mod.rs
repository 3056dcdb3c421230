//! `p2plab graph FILE.rhai`: a picture of a scenario's topology, drawn from its dry-run. The
//! script runs as `p2plab check` runs it; the groups, nodes, shapes and group links it left
//! become a `Picture` (`picture`, with the words of `labels`), placed on a circle (`layout`)
//! and written as SVG (`svg`). Only the dry-run and the written file touch the world.

pub mod labels;
pub mod layout;
pub mod picture;
pub mod svg;

use std::path::{Path, PathBuf};

use crate::run::{self, RunConfig, RunError, RunOutcome};
pub use picture::{About, Picture};

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The script failed (exit code 1) or could not be read (2).
    #[error("{0}")]
    Run(#[from] RunError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GraphError {
    /// As `p2plab script`'s: 1 the script failed, 2 usage or environment.
    pub fn exit_code(&self) -> i32 {
        match self {
            GraphError::Run(e) => e.exit_code(),
            GraphError::Write { .. } => 2,
        }
    }
}

/// Dry-runs `cfg`'s script (with seed 0 unless it names one) and draws the topology it left;
/// also how the dry-run went (unread `--set` names, for a warning).
pub fn draw(cfg: &RunConfig) -> Result<(String, RunOutcome), RunError> {
    let (outcome, picture) = run::check_state(cfg, Picture::of)?;
    let about = About {
        script: cfg.script.file_name().map_or_else(
            || cfg.script.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        ),
        seed: outcome.seed,
        params: cfg.params.clone(),
        end: outcome.report.end_time,
    };
    Ok((svg::render(&picture.titled(&about)), outcome))
}

/// Draws `cfg`'s topology into `out`.
pub fn write(cfg: &RunConfig, out: &Path) -> Result<RunOutcome, GraphError> {
    let (svg, outcome) = draw(cfg)?;
    std::fs::write(out, svg).map_err(|source| GraphError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(outcome)
}

/// Where `p2plab graph` writes without `-o`: `<script stem>.svg` in the current folder, so
/// that drawing a script of someone else's folder never writes there.
pub fn default_output(script: &Path) -> PathBuf {
    let stem = script
        .file_stem()
        .map_or_else(|| "topology".into(), |s| s.to_string_lossy().into_owned());
    PathBuf::from(format!("{stem}.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_goes_next_to_the_caller() {
        assert_eq!(
            default_output(Path::new("scripts/churn.rhai")),
            PathBuf::from("churn.svg")
        );
        assert_eq!(
            default_output(Path::new("/")),
            PathBuf::from("topology.svg")
        );
    }
}
