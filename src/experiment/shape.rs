//! Access-link and group-link parameters as the experiment state keeps them, with units
//! resolved (bits/s, bytes, nanoseconds). Validation of user input lives in `script::api::net`.

use serde::{Deserialize, Serialize};

use crate::script::units::Nanos;

/// The access link of one node. `None` rates mean unlimited; a node never shaped has
/// `LinkShape::default()`: unlimited, no added latency, no loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LinkShape {
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub latency: Nanos,
    pub jitter: Nanos,
    pub loss: f64,
    /// Queue limit in bytes; `None` = the default (max of 64 KiB and 100 ms at the rate).
    pub queue: Option<u64>,
}

/// A partial update of a `LinkShape`: `shape()` changes only the keys it is given.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShapeUpdate {
    pub up: Option<u64>,
    pub down: Option<u64>,
    pub latency: Option<Nanos>,
    pub jitter: Option<Nanos>,
    pub loss: Option<f64>,
    pub queue: Option<u64>,
}

impl LinkShape {
    pub fn apply(&self, update: &ShapeUpdate) -> LinkShape {
        LinkShape {
            up: update.up.or(self.up),
            down: update.down.or(self.down),
            latency: update.latency.unwrap_or(self.latency),
            jitter: update.jitter.unwrap_or(self.jitter),
            loss: update.loss.unwrap_or(self.loss),
            queue: update.queue.or(self.queue),
        }
    }
}

/// Extra latency, jitter and loss between two groups (symmetric).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupLink {
    pub latency: Nanos,
    pub jitter: Nanos,
    pub loss: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_changes_only_given_keys() {
        let base = LinkShape {
            up: Some(1000),
            latency: 5,
            ..Default::default()
        };
        let next = base.apply(&ShapeUpdate {
            down: Some(2000),
            latency: Some(7),
            ..Default::default()
        });
        assert_eq!(next.up, Some(1000));
        assert_eq!(next.down, Some(2000));
        assert_eq!(next.latency, 7);
        assert_eq!(next.loss, 0.0);
    }
}
