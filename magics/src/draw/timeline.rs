//! A run's timeline as a Gantt chart: one bar per asset, in order of start
//! — queued (submitted until its job started), waiting in its job (a step
//! of a grouped job until its upstream steps ended, or the job's setup),
//! running (coloured by how it ended) — and, behind the bars of a grouped
//! allocation's steps, the job's own bar. As a self-contained SVG and as
//! text.

use std::fmt::Write as _;

use super::state::state_color;
use super::{one_line, text_px, truncate, xml_escape};

/// One asset's bar; times in seconds from the timeline's start.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineBar {
    pub asset: String,
    /// How it ended (`done`, `failed`, `cancelled`) or `running`.
    pub state: String,
    pub job_id: Option<String>,
    /// The grouped allocation it ran in as a step.
    pub allocation: Option<String>,
    pub submitted: f64,
    /// Its job (allocation) started.
    pub job_start: Option<f64>,
    /// It started computing.
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// Shown with the bar: `wall 1.2 s · peak 180M`.
    pub detail: String,
}

impl TimelineBar {
    /// The end of what is known about it.
    fn last(&self) -> f64 {
        [Some(self.submitted), self.job_start, self.start, self.end]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max)
    }

    /// (queued, waiting in its allocation, running) as `(from, to)`.
    fn segments(&self, now: f64) -> [Option<(f64, f64)>; 3] {
        let started = self.start.or(self.job_start);
        let queued_to = self.job_start.or(started).or(self.end).unwrap_or(now);
        let queued = Some((self.submitted, queued_to.max(self.submitted)));
        let waiting = match (self.job_start, self.start) {
            (Some(j), Some(s)) if s > j => Some((j, s)),
            _ => None,
        };
        let running = self
            .start
            .or(self.job_start.filter(|_| self.end.is_some()))
            .map(|s| (s, self.end.unwrap_or(now).max(s)));
        [queued, waiting, running]
    }
}

/// A run's timeline: a title (with the totals) and the bars in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    pub title: String,
    pub bars: Vec<TimelineBar>,
}

/// The allocations' spans: (allocation, job id, first row, last row, start, end).
fn allocations(t: &Timeline, now: f64) -> Vec<(String, String, usize, usize, f64, f64)> {
    let mut out: Vec<(String, String, usize, usize, f64, f64)> = Vec::new();
    for (i, b) in t.bars.iter().enumerate() {
        let Some(a) = &b.allocation else { continue };
        let start = b.job_start.or(b.start).unwrap_or(b.submitted);
        let end = b.end.unwrap_or(now);
        match out.last_mut() {
            Some(last) if last.0 == *a && last.3 + 1 == i => {
                last.3 = i;
                last.4 = last.4.min(start);
                last.5 = last.5.max(end);
            }
            _ => out.push((
                a.clone(),
                b.job_id.clone().unwrap_or_default(),
                i,
                i,
                start,
                end,
            )),
        }
    }
    out
}

/// A tick step giving at most 8 ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    const STEPS: [f64; 17] = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
        3600.0, 7200.0,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 8.0)
        .unwrap_or_else(|| (span / 8.0 / 3600.0).ceil() * 3600.0)
}

/// `0s`, `2.5s`, `1m30s`, `2h`.
pub fn seconds_label(s: f64) -> String {
    if s < 60.0 {
        let r = (s * 10.0).round() / 10.0;
        if r.fract() == 0.0 {
            format!("{}s", r as i64)
        } else {
            format!("{r:.1}s")
        }
    } else if s < 3600.0 {
        let (m, sec) = ((s / 60.0).floor() as i64, (s % 60.0).round() as i64);
        if sec == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{sec:02}s")
        }
    } else {
        let (h, m) = (
            (s / 3600.0).floor() as i64,
            ((s % 3600.0) / 60.0).round() as i64,
        );
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{m:02}m")
        }
    }
}

fn num(v: f64) -> String {
    format!("{:.1}", (v * 10.0).round() / 10.0)
}

const WIDTH: f64 = 760.0;
const ROW: f64 = 24.0;
const BAR: f64 = 14.0;
const TOP: f64 = 56.0;
const FONT: f64 = 12.0;
const QUEUED: &str = "#90caf9";
const WAITING: &str = "#e3f2fd";
const INK: &str = "#1f2328";
const MUTED: &str = "#57606a";

/// A job box's label: after its right end, or inside it when the chart
/// ends there.
fn job_label(text: &str, right: f64, y: f64) -> String {
    let w = text_px(text, 10.0);
    let (x, anchor) = if right + 4.0 + w < WIDTH - 8.0 {
        (right + 4.0, "start")
    } else {
        (right - 4.0, "end")
    };
    format!(
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"{anchor}\" fill=\"{MUTED}\">{}</text>",
        num(x),
        num(y),
        xml_escape(text)
    )
}

/// The timeline as a self-contained SVG: each asset a `<g class="bar">`
/// (`data-asset`, `data-start`, `data-state`) with its segments
/// (`rect.queued`, `rect.waiting`, `rect.run`) and a `<title>`; grouped
/// allocations a `rect.job` behind their steps; a time axis and a legend.
pub fn svg(t: &Timeline) -> String {
    let now = t.bars.iter().map(TimelineBar::last).fold(0.0, f64::max);
    let span = now.max(0.1);
    let label_w = t
        .bars
        .iter()
        .map(|b| text_px(&truncate(&one_line(&b.asset), 28), FONT))
        .fold(60.0, f64::max)
        .min(220.0)
        + 20.0;
    let plot_w = WIDTH - label_w - 20.0;
    let x = |s: f64| label_w + s / span * plot_w;
    let height = TOP + ROW * t.bars.len().max(1) as f64 + 44.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" viewBox=\"0 0 {WIDTH} {h}\" \
         font-family=\"sans-serif\" font-size=\"{FONT}\" role=\"img\">\n<title>{title}</title>\n\
         <rect class=\"background\" width=\"{WIDTH}\" height=\"{h}\" rx=\"8\" fill=\"#ffffff\"/>\n\
         <text class=\"heading\" x=\"12\" y=\"20\" font-size=\"13\" font-weight=\"600\" fill=\"{INK}\">{title}</text>\n",
        h = num(height),
        title = xml_escape(&one_line(&t.title)),
    );
    // Axis and grid.
    let step = tick_step(span);
    let bottom = TOP + ROW * t.bars.len().max(1) as f64;
    let mut tick = 0.0;
    while tick <= span + 1e-9 {
        let _ = writeln!(
            s,
            "<line class=\"tick\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>\
             <text x=\"{0}\" y=\"{3}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{MUTED}\">{4}</text>",
            num(x(tick)),
            num(TOP - 8.0),
            num(bottom),
            num(TOP - 12.0),
            seconds_label(tick)
        );
        tick += step;
    }
    // Grouped allocations behind their steps.
    for (name, job, first, last, start, end) in allocations(t, now) {
        let y = TOP + ROW * first as f64 + 2.0;
        let h = ROW * (last - first + 1) as f64 - 4.0;
        let _ = writeln!(
            s,
            "<g class=\"job\" data-allocation=\"{n}\" data-job=\"{j}\"><title>job {j} ({n}): {} steps</title>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"#f6f8fa\" stroke=\"#8c959f\" stroke-dasharray=\"3 2\"/>{label}</g>",
            last - first + 1,
            num(x(start)),
            num(y),
            num((x(end) - x(start)).max(2.0)),
            num(h),
            n = xml_escape(&name),
            j = xml_escape(&job),
            label = job_label(&format!("job {job}"), x(end), y + 11.0),
        );
    }
    for (i, b) in t.bars.iter().enumerate() {
        let y = TOP + ROW * i as f64 + (ROW - BAR) / 2.0;
        let [queued, waiting, running] = b.segments(now);
        let start = b.start.or(b.job_start).unwrap_or(b.submitted);
        let job = b
            .job_id
            .as_deref()
            .map(|j| format!(", job {j}"))
            .unwrap_or_default();
        let _ = write!(
            s,
            "<g class=\"bar\" data-asset=\"{a}\" data-start=\"{}\" data-state=\"{st}\">\
             <title>{a}: {st}{job}{}</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{INK}\">{}</text>",
            num(start),
            if b.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", xml_escape(&one_line(&b.detail)))
            },
            num(label_w - 8.0),
            num(y + BAR - 3.0),
            xml_escape(&truncate(&one_line(&b.asset), 28)),
            a = xml_escape(&b.asset),
            st = xml_escape(&b.state),
            job = xml_escape(&job),
        );
        let mut rect = |class: &str, (from, to): (f64, f64), fill: &str, extra: &str| {
            let _ = write!(
                s,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{BAR}\" fill=\"{fill}\"{extra}/>",
                num(x(from)),
                num(y),
                num((x(to) - x(from)).max(1.0)),
            );
        };
        if let Some(q) = queued.filter(|(a, b)| b > a) {
            rect("queued", q, QUEUED, "");
        }
        if let Some(w) = waiting {
            rect("waiting", w, WAITING, " stroke=\"#90caf9\"");
        }
        if let Some(r) = running {
            let class = format!("run {}", b.state);
            rect(&class, r, state_color(&b.state), "");
        }
        s.push_str("</g>\n");
    }
    // Legend.
    let mut lx = 12.0;
    let ly = bottom + 20.0;
    let mut states: Vec<&str> = vec!["queued"];
    if t.bars.iter().any(|b| b.segments(now)[1].is_some()) {
        states.push("waiting in its job");
    }
    for b in &t.bars {
        if !states.contains(&b.state.as_str()) {
            states.push(&b.state);
        }
    }
    for st in states {
        let fill = match st {
            "queued" => QUEUED,
            "waiting in its job" => WAITING,
            other => state_color(other),
        };
        let _ = writeln!(
            s,
            "<g class=\"legend\"><rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" rx=\"2\" fill=\"{fill}\" stroke=\"#8c959f\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{MUTED}\">{}</text></g>",
            num(lx),
            num(ly),
            num(lx + 17.0),
            num(ly + 10.5),
            xml_escape(st)
        );
        lx += 17.0 + text_px(st, FONT) + 18.0;
    }
    s.push_str("</svg>\n");
    s
}

/// The timeline as text: a heading, a time scale, and one line per asset
/// (`.` queued, `:` waiting in its job, `#` running, `x` failed,
/// `-` cancelled), the allocation's steps under a `job N (name)` line.
pub fn text(t: &Timeline) -> String {
    const COLS: usize = 50;
    let now = t.bars.iter().map(TimelineBar::last).fold(0.0, f64::max);
    let span = now.max(0.1);
    let name_w = t
        .bars
        .iter()
        .map(|b| b.asset.chars().count().min(24) + 2)
        .max()
        .unwrap_or(6)
        .max(6);
    let col = |s: f64| ((s / span * COLS as f64).round() as usize).min(COLS);
    let mut out = format!("{}\n", one_line(&t.title));
    let mut scale = vec![' '; COLS + 1];
    let step = tick_step(span);
    let mut ticks = String::new();
    let mut tick = 0.0;
    while tick <= span + 1e-9 {
        scale[col(tick)] = '|';
        ticks = format!("{ticks}{}", seconds_label(tick));
        tick += step;
        let next = col(tick).min(COLS);
        while ticks.chars().count() < next {
            ticks.push(' ');
        }
    }
    let pad = " ".repeat(name_w + 1);
    let _ = writeln!(out, "{pad}{}", ticks.trim_end());
    let _ = writeln!(out, "{pad}{}", scale.iter().collect::<String>().trim_end());
    let mut group: Option<&str> = None;
    for b in &t.bars {
        if b.allocation.as_deref() != group {
            group = b.allocation.as_deref();
            if let Some(g) = group {
                let job = b.job_id.as_deref().unwrap_or("?");
                let _ = writeln!(out, "job {job} ({g}):");
            }
        }
        let mut line = [' '; COLS];
        let mut paint = |seg: Option<(f64, f64)>, c: char| {
            if let Some((a, z)) = seg {
                let (a, z) = (col(a), col(z).max(col(a) + 1).min(COLS));
                for cell in &mut line[a.min(COLS - 1)..z] {
                    *cell = c;
                }
            }
        };
        let [queued, waiting, running] = b.segments(now);
        paint(queued.filter(|(a, z)| z > a), '.');
        paint(waiting, ':');
        let run_char = match b.state.as_str() {
            "failed" => 'x',
            "cancelled" => '-',
            _ => '#',
        };
        paint(running, run_char);
        let indent = if b.allocation.is_some() { "  " } else { "" };
        let name = format!("{indent}{}", truncate(&one_line(&b.asset), 24));
        let _ = writeln!(
            out,
            "{name:<name_w$} |{}| {}{}",
            line.iter().collect::<String>(),
            b.state,
            if b.detail.is_empty() {
                String::new()
            } else {
                format!(", {}", one_line(&b.detail))
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::xml;

    fn bar(asset: &str, alloc: Option<&str>, times: [Option<f64>; 4], state: &str) -> TimelineBar {
        TimelineBar {
            asset: asset.into(),
            state: state.into(),
            job_id: Some("7".into()),
            allocation: alloc.map(str::to_owned),
            submitted: times[0].unwrap(),
            job_start: times[1],
            start: times[2],
            end: times[3],
            detail: "wall 1.0 s".into(),
        }
    }

    fn sample() -> Timeline {
        Timeline {
            title: "run 3 <slurm> & co".into(),
            bars: vec![
                bar(
                    "a",
                    None,
                    [Some(0.0), Some(2.0), Some(2.0), Some(5.0)],
                    "done",
                ),
                bar(
                    "b",
                    Some("alloc_b"),
                    [Some(0.0), Some(6.0), Some(6.5), Some(8.0)],
                    "done",
                ),
                bar(
                    "c",
                    Some("alloc_b"),
                    [Some(0.0), Some(6.0), Some(8.0), Some(9.0)],
                    "failed",
                ),
                bar("d", None, [Some(0.0), None, None, Some(9.5)], "cancelled"),
            ],
        }
    }

    #[test]
    fn svg_has_one_bar_per_asset_in_order_and_a_job_behind_the_steps() {
        let doc = xml::parse(&svg(&sample())).expect("well-formed SVG");
        let bars: Vec<_> = doc
            .find_all("g")
            .into_iter()
            .filter(|g| g.has_class("bar"))
            .collect();
        let names: Vec<&str> = bars.iter().map(|b| b.attr("data-asset").unwrap()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let ys: Vec<f64> = bars
            .iter()
            .map(|b| b.find_all("rect")[0].num("y"))
            .collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
        // c waited inside its allocation; d never ran.
        let classes = |i: usize| -> Vec<String> {
            bars[i]
                .find_all("rect")
                .iter()
                .map(|r| r.attr("class").unwrap().to_string())
                .collect()
        };
        assert_eq!(classes(0), ["queued", "run done"]);
        assert_eq!(classes(2), ["queued", "waiting", "run failed"]);
        assert_eq!(classes(3), ["queued"]);
        let jobs: Vec<_> = doc
            .find_all("g")
            .into_iter()
            .filter(|g| g.has_class("job"))
            .collect();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].attr("data-allocation"), Some("alloc_b"));
        // The job's box spans its two steps' rows.
        let job = jobs[0].find_all("rect")[0];
        assert!(job.num("y") < ys[1] && job.num("y") + job.num("height") > ys[2]);
        assert!(doc.text().contains("run 3 <slurm> & co"));
    }

    #[test]
    fn text_shows_queue_and_compute() {
        let t = text(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "run 3 <slurm> & co");
        let a = lines.iter().find(|l| l.starts_with("a ")).unwrap();
        assert!(a.contains(".#") && a.ends_with("| done, wall 1.0 s"), "{t}");
        assert!(t.contains("job 7 (alloc_b):\n  b"), "{t}");
        let c = lines.iter().find(|l| l.starts_with("  c")).unwrap();
        assert!(c.contains(":x"), "{t}");
        let d = lines.iter().find(|l| l.starts_with("d ")).unwrap();
        assert!(d.contains('.') && !d.contains('#'), "{t}");
        assert!(lines[1].contains("0s") && lines[1].contains("8s"), "{t}");
    }

    #[test]
    fn labels_and_ticks() {
        assert_eq!(seconds_label(0.0), "0s");
        assert_eq!(seconds_label(2.5), "2.5s");
        assert_eq!(seconds_label(90.0), "1m30s");
        assert_eq!(seconds_label(7200.0), "2h");
        assert_eq!(tick_step(9.5), 2.0);
        assert_eq!(tick_step(0.3), 0.1);
        assert!(svg(&Timeline::default()).contains("</svg>"));
    }
}
