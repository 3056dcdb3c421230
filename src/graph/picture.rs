//! What a topology picture says, free of geometry: one box per group (its name, its nodes,
//! their access links, the link of the group with itself) and one line per pair of linked
//! groups, read from the experiment state a dry-run left.

use std::collections::BTreeMap;

use super::labels::{self, Reading};
use crate::experiment::{Experiment, GroupId, GroupLink, JitterDist, LinkShape, TraceRef};
use crate::units::Nanos;

/// A topology as the picture tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Empty until `titled`.
    pub title: String,
    pub subtitle: String,
    /// In the order the script made the groups.
    pub groups: Vec<GroupBox>,
    /// Links between two different groups, by the groups' indices in `groups` (`a < b`).
    pub links: Vec<LinkLine>,
    pub nodes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupBox {
    pub name: String,
    /// Under the name: the nodes, their links, the link inside the group.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkLine {
    pub a: usize,
    pub b: usize,
    pub latency: Nanos,
    pub lossy: bool,
    /// `30 ms ± 2 ms, 0.1 % loss`.
    pub label: String,
}

/// The run a picture is of, for its title.
#[derive(Debug, Clone, PartialEq)]
pub struct About {
    /// The script's file name.
    pub script: String,
    pub seed: u64,
    pub params: BTreeMap<String, String>,
    /// Experiment time when the dry-run ended.
    pub end: Nanos,
}

impl Picture {
    /// The groups and links of `state`, untitled: the state is seen before the run's end
    /// time is known.
    pub fn of(state: &Experiment) -> Picture {
        let groups = state.group_names().len();
        Picture {
            title: String::new(),
            subtitle: String::new(),
            groups: (0..groups as u32)
                .map(|g| group_box(state, GroupId(g)))
                .collect(),
            links: (0..groups)
                .flat_map(|a| (a + 1..groups).map(move |b| (a, b)))
                .filter_map(|(a, b)| {
                    let link = state.group_link(GroupId(a as u32), GroupId(b as u32));
                    (link != GroupLink::NONE).then(|| LinkLine {
                        a,
                        b,
                        latency: link.latency,
                        lossy: link.loss > 0.0 || link.burst.is_some(),
                        label: link_words(&link),
                    })
                })
                .collect(),
            nodes: state.nodes().len(),
        }
    }

    /// The picture with a title and a subtitle that say which run it is of.
    pub fn titled(mut self, about: &About) -> Picture {
        let sets: String = about
            .params
            .iter()
            .map(|(k, v)| format!(" --set {k}={v}"))
            .collect();
        self.title = format!(
            "{}: {} in {}",
            about.script,
            count(self.nodes, "node"),
            count(self.groups.len(), "group")
        );
        self.subtitle = format!(
            "dry-run, --seed {}{sets}: links as the script left them at {}",
            about.seed,
            labels::duration(about.end)
        );
        self
    }
}

/// `1 node`, `20 nodes`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn group_box(state: &Experiment, group: GroupId) -> GroupBox {
    let shapes: Vec<LinkShape> = state
        .members(group)
        .iter()
        .map(|&n| state.node(n).shape)
        .collect();
    let mut lines = vec![count(shapes.len(), "node")];
    let shown = lines.len();
    lines.extend(shape_lines(&shapes, |id| {
        state.trace(id.id).map_or("a trace".into(), |(name, _)| {
            format!("trace {}", name.rsplit('/').next().unwrap_or(name))
        })
    }));
    if lines.len() == shown {
        lines.push("unshaped".into());
    }
    let inside = state.group_link(group, group);
    if inside != GroupLink::NONE {
        lines.push(format!("inside: + {}", link_words(&inside)));
    }
    GroupBox {
        name: state.group_name(group).to_string(),
        lines,
    }
}

/// The lines that describe the access links of a group's nodes; none for unshaped ones.
fn shape_lines(shapes: &[LinkShape], trace: impl Fn(TraceRef) -> String) -> Vec<String> {
    let mut lines = Vec::new();
    let unlimited = || Reading::Words("unlimited".into());
    let rate = |r: Option<std::num::NonZeroU64>, t: Option<TraceRef>| match (t, r) {
        (Some(t), _) => Reading::Words(trace(t)),
        (None, Some(r)) => Reading::Number(r.get() as f64),
        (None, None) => unlimited(),
    };
    let up: Vec<_> = shapes
        .iter()
        .map(|s| rate(s.up_rate(), s.traces.up))
        .collect();
    let down: Vec<_> = shapes
        .iter()
        .map(|s| rate(s.down_rate(), s.traces.down))
        .collect();
    let show_rate = |v: f64| labels::rate(v as u64);
    let plain = |r: &[Reading]| {
        r.iter().all(|r| matches!(r, Reading::Number(_))) || r.iter().all(|r| *r == unlimited())
    };
    let (up_words, down_words) = (
        labels::summary(&up, show_rate).unwrap_or_default(),
        labels::summary(&down, show_rate).unwrap_or_default(),
    );
    if up.iter().chain(&down).all(|r| *r == unlimited()) {
        // Unshaped rates say nothing.
    } else if plain(&up) && plain(&down) {
        lines.push(format!("{up_words} up, {down_words} down"));
    } else {
        // Words (a trace, "mixed") read better each on a line of its own.
        lines.push(format!("up: {up_words}"));
        lines.push(format!("down: {down_words}"));
    }
    let show_time = |v: f64| labels::duration(v as Nanos);
    let latency: Vec<_> = shapes
        .iter()
        .map(|s| match s.traces.delay {
            Some(t) => Reading::Words(trace(t)),
            None => Reading::Number(s.latency as f64),
        })
        .collect();
    let jitter: Vec<_> = shapes
        .iter()
        .map(|s| Reading::Number(s.jitter as f64))
        .collect();
    let none = Reading::Number(0.0);
    let jittery = jitter.iter().any(|j| *j != none);
    if jittery || latency.iter().any(|l| *l != none) {
        let mut line = format!(
            "latency {}",
            labels::summary(&latency, show_time).unwrap_or_default()
        );
        if jittery {
            line.push_str(&format!(
                " ± {}",
                labels::summary(&jitter, show_time).unwrap_or_default()
            ));
            let dists: Vec<_> = shapes
                .iter()
                .map(|s| Reading::Words(s.jitter_model.dist.name().into()))
                .collect();
            if shapes
                .iter()
                .any(|s| s.jitter_model.dist != JitterDist::Uniform)
            {
                let dist = labels::summary(&dists, |_| String::new()).unwrap_or_default();
                line.push_str(&format!(" ({dist})"));
            }
        }
        lines.push(line);
    }
    let loss: Vec<_> = shapes
        .iter()
        .map(|s| match s.burst {
            Some(_) => Reading::Words("bursty".into()),
            None => Reading::Number(s.loss),
        })
        .collect();
    if loss.iter().any(|l| *l != none) {
        lines.push(format!(
            "loss {}",
            labels::summary(&loss, labels::loss).unwrap_or_default()
        ));
    }
    let queue: Vec<_> = shapes
        .iter()
        .map(|s| match s.queue {
            Some(q) => Reading::Number(q as f64),
            None => Reading::Words("default".into()),
        })
        .collect();
    if queue.iter().any(|q| *q != Reading::Words("default".into())) {
        lines.push(format!(
            "queue {}",
            labels::summary(&queue, |v| labels::size(v as u64)).unwrap_or_default()
        ));
    }
    lines
}

/// A group link in words: `30 ms ± 2 ms, 0.1 % loss`.
fn link_words(link: &GroupLink) -> String {
    let mut words = labels::duration(link.latency);
    if link.jitter > 0 {
        words.push_str(&format!(" ± {}", labels::duration(link.jitter)));
    }
    if link.burst.is_some() {
        words.push_str(", bursty loss");
    } else if link.loss > 0.0 {
        words.push_str(&format!(", {} loss", labels::loss(link.loss)));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Placement;

    fn state() -> Experiment {
        let mut exp = Experiment::new(Placement::single());
        for (n, group) in [(2, "dsl"), (1, "fiber"), (1, "idle")] {
            for node in exp.plan_nodes(n, group, None).unwrap() {
                exp.add_node(node, group);
            }
        }
        let dsl = exp.group("dsl").unwrap();
        let fiber = exp.group("fiber").unwrap();
        for (i, &node) in exp.members(dsl).to_vec().iter().enumerate() {
            let shape = LinkShape {
                up: Some(128_000),
                down: Some(2_000_000 * (i as u64 + 1)),
                latency: 30_000_000,
                jitter: 1_000_000,
                loss: 0.001,
                ..LinkShape::default()
            };
            exp.set_shape(node, shape);
        }
        let link = GroupLink {
            latency: 40_000_000,
            loss: 0.01,
            ..GroupLink::NONE
        };
        exp.set_group_link(dsl, fiber, link);
        let inside = GroupLink {
            latency: 2_000_000,
            ..GroupLink::NONE
        };
        exp.set_group_link(fiber, fiber, inside);
        exp
    }

    fn about() -> About {
        About {
            script: "x.rhai".into(),
            seed: 3,
            params: BTreeMap::from([("peers".into(), "2".into())]),
            end: 10_000_000_000,
        }
    }

    #[test]
    fn groups_show_their_nodes_and_shapes() {
        let picture = Picture::of(&state()).titled(&about());
        assert_eq!(picture.title, "x.rhai: 4 nodes in 3 groups");
        assert_eq!(
            picture.subtitle,
            "dry-run, --seed 3 --set peers=2: links as the script left them at 10 s"
        );
        let dsl = &picture.groups[0];
        assert_eq!(dsl.name, "dsl");
        assert_eq!(
            dsl.lines,
            [
                "2 nodes",
                "128 kbit/s up, 2 mbit/s–4 mbit/s down",
                "latency 30 ms ± 1 ms",
                "loss 0.1 %",
            ]
        );
        assert_eq!(
            picture.groups[1].lines,
            ["1 node", "unshaped", "inside: + 2 ms"]
        );
        assert_eq!(picture.groups[2].lines, ["1 node", "unshaped"]);
    }

    #[test]
    fn links_join_different_groups_only() {
        let picture = Picture::of(&state()).titled(&about());
        assert_eq!(
            picture.links,
            [LinkLine {
                a: 0,
                b: 1,
                latency: 40_000_000,
                lossy: true,
                label: "40 ms, 1 % loss".into(),
            }]
        );
    }
}
