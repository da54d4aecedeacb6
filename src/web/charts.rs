//! Charts drawn on the server as SVG: the disk bar of each daemon and the
//! bytes freed per run. Each comes with its numbers as text, and each part
//! has a pattern as well as a colour, so colour is never the only cue.

use super::format;

pub use crate::report::disk::Part;

fn label(part: Part) -> &'static str {
    match part {
        Part::Current => "current",
        Part::InUse => "in use",
        Part::Other => "other",
        Part::Kept => "kept (keep_previous)",
        Part::Waiting => "waiting (min age)",
        Part::Removable => "outdated, removable",
    }
}

fn class(part: Part) -> &'static str {
    match part {
        Part::Current => "current",
        Part::InUse => "in-use",
        Part::Other => "other",
        Part::Kept => "kept",
        Part::Waiting => "waiting",
        Part::Removable => "removable",
    }
}

pub struct Segment {
    pub label: &'static str,
    pub class: &'static str,
    pub bytes: String,
    pub percent: String,
    /// Position and width in the SVG's 0..100 viewBox.
    pub x: String,
    pub width: String,
}

pub struct Bar {
    pub segments: Vec<Segment>,
    /// The chart's text alternative.
    pub summary: String,
}

pub fn bar(parts: &[(Part, u64)]) -> Bar {
    let total: u64 = parts.iter().map(|(_, b)| b).sum();
    let mut x = 0.0;
    let segments: Vec<Segment> = parts
        .iter()
        .map(|(part, bytes)| {
            let share = if total == 0 {
                0.0
            } else {
                *bytes as f64 * 100.0 / total as f64
            };
            let s = Segment {
                label: label(*part),
                class: class(*part),
                bytes: format::bytes(*bytes),
                percent: format!("{share:.0} %"),
                x: format!("{x:.3}"),
                width: format!("{share:.3}"),
            };
            x += share;
            s
        })
        .collect();
    let summary = segments
        .iter()
        .map(|s| format!("{} {}", s.label, s.bytes))
        .collect::<Vec<_>>()
        .join(", ");
    Bar { segments, summary }
}

/// One bar of the bytes-freed chart.
pub struct RunBar {
    pub label: String,
    pub freed: String,
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
}

/// The Runs page's chart: bars of bytes freed per run, oldest left, on a
/// y axis in bytes and an x axis of runs, in the SVG's viewBox coordinates.
pub struct RunsChart {
    pub bars: Vec<RunBar>,
    /// Y ticks: (y, label), bottom to top.
    pub y_ticks: Vec<(String, String)>,
    /// The first and last run's label under the x axis.
    pub x_first: String,
    pub x_last: String,
}

/// The plot area inside the viewBox (templates/runs.html: `0 0 640 200`): left of it the y labels, under it the x labels.
pub const PLOT_LEFT: f64 = 72.0;
pub const PLOT_RIGHT: f64 = 632.0;
pub const PLOT_TOP: f64 = 12.0;
pub const PLOT_BOTTOM: f64 = 168.0;

/// Bytes freed per run (`(id, label, bytes)`, oldest first), heights scaled
/// to the largest run; the y axis has ticks at 0, half and the largest.
pub fn freed_per_run(runs: &[(i64, String, i64)]) -> RunsChart {
    let max = runs.iter().map(|(_, _, b)| *b).max().unwrap_or(0).max(0);
    let scale = max.max(1) as f64;
    let n = runs.len().max(1) as f64;
    let slot = (PLOT_RIGHT - PLOT_LEFT) / n;
    let plot_h = PLOT_BOTTOM - PLOT_TOP;
    let bars = runs
        .iter()
        .enumerate()
        .map(|(i, (_, label, bytes))| {
            let h = (*bytes).max(0) as f64 * plot_h / scale;
            RunBar {
                label: label.clone(),
                freed: format::bytes(u64::try_from(*bytes).unwrap_or(0)),
                x: format!("{:.2}", PLOT_LEFT + i as f64 * slot + slot * 0.1),
                y: format!("{:.2}", PLOT_BOTTOM - h),
                width: format!("{:.2}", slot * 0.8),
                height: format!("{h:.2}"),
            }
        })
        .collect();
    let y_ticks = [0, max / 2, max]
        .iter()
        .map(|v| {
            let y = PLOT_BOTTOM - *v as f64 * plot_h / scale;
            (
                format!("{y:.2}"),
                format::bytes(u64::try_from(*v).unwrap_or(0)),
            )
        })
        .collect();
    RunsChart {
        bars,
        y_ticks,
        x_first: runs
            .first()
            .map(|r| format!("#{}", r.0))
            .unwrap_or_default(),
        x_last: runs.last().map(|r| format!("#{}", r.0)).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ImageId;
    use crate::inventory::{ClassifiedImage, Status};
    use crate::inventory::{ImageInfo, Layer};
    use crate::policy::Decision;
    use crate::report::disk::disk_parts;

    fn image(n: u8, status: Status, layers: &[(&str, u64)]) -> ClassifiedImage {
        ClassifiedImage {
            info: ImageInfo {
                id: ImageId::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap(),
                repo_tags: vec![],
                repo_digests: vec![],
                created: 0,
                size: 0,
                layers: layers
                    .iter()
                    .map(|(c, s)| Layer {
                        chain_id: (*c).into(),
                        size: *s,
                    })
                    .collect(),
            },
            owner: None,
            status,
            reason: String::new(),
            containers: vec![],
            outdated_since: None,
            unique_bytes: 0,
        }
    }

    fn decision(removable: bool) -> Decision {
        Decision {
            removable,
            why: String::new(),
            waits_until: None,
            kept_previous: false,
        }
    }

    #[test]
    fn shared_layers_count_once_under_the_most_needed_image() {
        let images = [
            image(1, Status::Current, &[("base", 100), ("cur", 5)]),
            image(2, Status::Outdated, &[("base", 100), ("old", 7)]),
            image(3, Status::Outdated, &[("base", 100), ("kept", 9)]),
        ];
        let kept = Decision {
            kept_previous: true,
            ..decision(false)
        };
        let parts = disk_parts(&images, &[decision(false), decision(true), kept]);
        let get = |p: Part| parts.iter().find(|(q, _)| *q == p).unwrap().1;
        assert_eq!(
            (
                get(Part::Current),
                get(Part::Removable),
                get(Part::Kept),
                get(Part::InUse)
            ),
            (105, 7, 9, 0)
        );
    }

    #[test]
    fn an_image_waiting_out_the_minimum_age_is_waiting_and_only_keep_previous_is_kept() {
        use crate::domain::AppId;
        use crate::policy::{decide, Policy};
        let now = 1_800_000_000;
        let outdated = |n: u8, hours_ago: i64, layer: &'static str| ClassifiedImage {
            owner: Some(AppId::parse("llm2").unwrap()),
            outdated_since: Some(now - hours_ago * 3600),
            ..image(n, Status::Outdated, &[(layer, 10 * u64::from(n))])
        };
        // Outdated 1 h ago and 2 h ago: both wait for the 24 h minimum age.
        let images = [outdated(1, 1, "a"), outdated(2, 2, "b")];
        let label_of = |policy: Policy| {
            let parts = disk_parts(&images, &decide(&policy, &images, now));
            bar(&parts)
                .segments
                .into_iter()
                .filter(|s| s.bytes != "0 B")
                .map(|s| (s.label, s.bytes))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            label_of(Policy::default()),
            [("waiting (min age)", "30 B".to_owned())]
        );
        // keep_previous = 1 keeps the more recent one; the other still waits.
        let keep_one = Policy {
            keep_previous: 1,
            ..Policy::default()
        };
        assert_eq!(
            label_of(keep_one),
            [
                ("kept (keep_previous)", "10 B".to_owned()),
                ("waiting (min age)", "20 B".to_owned())
            ]
        );
    }

    #[test]
    fn the_bar_adds_up_and_says_it_in_words() {
        let b = bar(&[(Part::Current, 75), (Part::Removable, 25)]);
        assert_eq!(
            (b.segments[1].x.as_str(), b.segments[1].width.as_str()),
            ("75.000", "25.000")
        );
        assert_eq!(b.summary, "current 75 B, outdated, removable 25 B");
    }

    #[test]
    fn the_runs_chart_has_a_byte_axis_up_to_the_largest_run() {
        let chart = freed_per_run(&[(3, "#3".into(), 1_000_000), (4, "#4".into(), 4_000_000)]);
        let labels: Vec<&str> = chart.y_ticks.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0 B", "2.00 MB", "4.00 MB"]);
        assert_eq!(chart.y_ticks[0].0, format!("{PLOT_BOTTOM:.2}"));
        assert_eq!(chart.y_ticks[2].0, format!("{PLOT_TOP:.2}"));
        assert_eq!(
            (chart.x_first.as_str(), chart.x_last.as_str()),
            ("#3", "#4")
        );
        let tallest: f64 = chart.bars[1].height.parse().unwrap();
        assert!((tallest - (PLOT_BOTTOM - PLOT_TOP)).abs() < 0.01);
    }
}
