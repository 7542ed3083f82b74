//! Small line plots side by side (an asset's history: duration, peak
//! memory, each numeric metadata key), one panel per series, the
//! materializations oldest to newest along x. A self-contained SVG.

use std::fmt::Write as _;

use super::{one_line, truncate, xml_escape};

/// One panel: its name and the values in order (`None`: not known then).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// Panels sharing an x axis labelled from `first` to `last`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plot {
    pub title: String,
    pub series: Vec<Series>,
    pub first: String,
    pub last: String,
}

const PANEL_W: f64 = 240.0;
const PANEL_H: f64 = 120.0;
const GAP: f64 = 14.0;
const PER_ROW: usize = 3;
const LINE: &str = "#1565c0";
const MUTED: &str = "#57606a";

fn num(v: f64) -> String {
    format!("{:.1}", (v * 10.0).round() / 10.0)
}

/// A value for an axis label: `12`, `0.35`, `1.2e6`.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(0.01..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The plot as SVG: each series a `<g class="series" data-name=...>` with a
/// `polyline` through its known values and a `circle.point` per value.
pub fn svg(p: &Plot) -> String {
    let rows = p.series.len().div_ceil(PER_ROW).max(1);
    let cols = p.series.len().clamp(1, PER_ROW);
    let width = GAP + (PANEL_W + GAP) * cols as f64;
    let height = 34.0 + (PANEL_H + GAP) * rows as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\n<title>{t}</title>\n\
         <rect class=\"background\" width=\"{w}\" height=\"{h}\" rx=\"8\" fill=\"#ffffff\"/>\n\
         <text x=\"{GAP}\" y=\"20\" font-size=\"13\" font-weight=\"600\" fill=\"#1f2328\">{t}</text>\n",
        w = num(width),
        h = num(height),
        t = xml_escape(&one_line(&p.title)),
    );
    if p.series.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{GAP}\" y=\"48\" fill=\"{MUTED}\">nothing to plot yet</text>\n</svg>\n"
        );
        return s;
    }
    for (k, series) in p.series.iter().enumerate() {
        let ox = GAP + (PANEL_W + GAP) * (k % PER_ROW) as f64;
        let oy = 34.0 + (PANEL_H + GAP) * (k / PER_ROW) as f64;
        let known: Vec<(usize, f64)> = series
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
            .collect();
        let (lo, hi) = known
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, v)| {
                (lo.min(v), hi.max(v))
            });
        // Values that (nearly) agree get an axis around them, ±10 %
        // (at least ±1 around 0), so noise does not look like a trend.
        let magnitude = lo.abs().max(hi.abs());
        let (lo, hi) = if known.is_empty() {
            (0.0, 1.0)
        } else if hi - lo < magnitude * 0.05 || hi - lo < 1e-12 {
            let (mid, half) = ((lo + hi) / 2.0, (magnitude * 0.1).max(1e-9));
            let half = if magnitude < 1e-9 { 1.0 } else { half };
            (mid - half, mid + half)
        } else {
            (lo, hi)
        };
        let (left, right, top, bottom) = (
            ox + 44.0,
            ox + PANEL_W - 8.0,
            oy + 32.0,
            oy + PANEL_H - 22.0,
        );
        let n = series.values.len().max(2) - 1;
        let px = |i: usize| left + (right - left) * i as f64 / n as f64;
        let py = |v: f64| bottom - (bottom - top) * (v - lo) / (hi - lo);
        let _ = write!(
            s,
            "<g class=\"series\" data-name=\"{name}\">\
             <rect x=\"{}\" y=\"{}\" width=\"{PANEL_W}\" height=\"{PANEL_H}\" rx=\"6\" fill=\"#f6f8fa\"/>\
             <text x=\"{}\" y=\"{}\" font-weight=\"600\" fill=\"#1f2328\">{label}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED}\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED}\">{}</text>\
             <line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#d0d7de\"/>\
             <text x=\"{l}\" y=\"{}\" fill=\"{MUTED}\">{first}</text>\
             <text x=\"{r}\" y=\"{}\" text-anchor=\"end\" fill=\"{MUTED}\">{last}</text>",
            num(ox),
            num(oy),
            num(ox + 8.0),
            num(oy + 15.0),
            num(left - 4.0),
            num(top + 4.0),
            short_number(hi),
            num(left - 4.0),
            num(bottom),
            short_number(lo),
            num(bottom + 14.0),
            num(bottom + 14.0),
            name = xml_escape(&series.name),
            label = xml_escape(&truncate(&one_line(&series.name), 34)),
            l = num(left),
            r = num(right),
            b = num(bottom),
            first = xml_escape(&p.first),
            last = xml_escape(&p.last),
        );
        if known.len() > 1 {
            let pts: Vec<String> = known
                .iter()
                .map(|&(i, v)| format!("{},{}", num(px(i)), num(py(v))))
                .collect();
            let _ = write!(
                s,
                "<polyline class=\"line\" points=\"{}\" fill=\"none\" stroke=\"{LINE}\" stroke-width=\"1.5\"/>",
                pts.join(" ")
            );
        }
        for &(i, v) in &known {
            let _ = write!(
                s,
                "<circle class=\"point\" cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{LINE}\"><title>{}</title></circle>",
                num(px(i)),
                num(py(v)),
                short_number(v)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// The plot as text: each series' values, oldest to newest (`-`: unknown).
pub fn text(p: &Plot) -> String {
    let mut out = format!("{}\n", one_line(&p.title));
    for series in &p.series {
        let values: Vec<String> = series
            .values
            .iter()
            .map(|v| v.map_or("-".to_string(), short_number))
            .collect();
        out.push_str(&format!(
            "  {}: {}\n",
            one_line(&series.name),
            values.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draw::xml;

    #[test]
    fn one_panel_per_series_with_its_points() {
        let p = Plot {
            title: "history of a".into(),
            series: vec![
                Series {
                    name: "duration (s)".into(),
                    values: vec![Some(1.0), Some(2.5), None, Some(2.0)],
                },
                Series {
                    name: "rows".into(),
                    values: vec![Some(3.0), Some(3.0), Some(3.0), Some(3.0)],
                },
                Series {
                    name: "x<y".into(),
                    values: vec![None, None, None, Some(1e9)],
                },
                Series {
                    name: "four".into(),
                    values: vec![Some(-1.0); 4],
                },
            ],
            first: "01-01 10:00".into(),
            last: "01-03 12:00".into(),
        };
        let doc = xml::parse(&svg(&p)).expect("well-formed");
        let panels: Vec<_> = doc
            .find_all("g")
            .into_iter()
            .filter(|g| g.has_class("series"))
            .collect();
        assert_eq!(panels.len(), 4);
        assert_eq!(panels[0].find_all("circle").len(), 3);
        assert_eq!(panels[2].attr("data-name"), Some("x<y"));
        assert_eq!(panels[2].find_all("polyline").len(), 0);
        // Points go up when values do.
        let cy: Vec<f64> = panels[0]
            .find_all("circle")
            .iter()
            .map(|c| c.num("cy"))
            .collect();
        assert!(cy[1] < cy[0], "{cy:?}");
        // A fourth panel starts a second row.
        let y = |g: &xml::Element| g.find_all("rect")[0].num("y");
        assert!(y(panels[3]) > y(panels[0]));
        assert!(svg(&Plot::default()).contains("nothing to plot"));
        assert_eq!(text(&p).lines().nth(1), Some("  duration (s): 1 2.5 - 2"));
        assert_eq!(short_number(1e9), "1.0e9");
        assert_eq!(short_number(0.35), "0.35");
        assert_eq!(short_number(12.0), "12");
    }
}
