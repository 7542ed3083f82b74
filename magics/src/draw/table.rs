//! Tables (`%assets`, `%runs`, the live status of a run) as HTML with inline
//! styles, and as aligned monospace text.

use std::fmt::Write as _;

use super::state::state_color;
use super::{display_width, one_line, text_on, xml_escape};

/// A table to render. Rows shorter than the header are padded with empty
/// cells; longer rows get extra, unnamed columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Optional per-row state (fresh, stale, missing, running, queued, done,
    /// failed, skipped, cancelled): colors the badge in the column named
    /// "state", or, without such a column, a stripe at the row's start.
    pub row_states: Vec<Option<String>>,
    pub caption: Option<String>,
}

impl Table {
    fn width(&self) -> usize {
        self.rows
            .iter()
            .map(Vec::len)
            .chain([self.columns.len()])
            .max()
            .unwrap_or(0)
    }

    fn header(&self, c: usize) -> &str {
        self.columns.get(c).map_or("", String::as_str)
    }

    fn cell(&self, r: usize, c: usize) -> &str {
        self.rows[r].get(c).map_or("", String::as_str)
    }

    fn state_column(&self) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.trim().eq_ignore_ascii_case("state"))
    }

    fn row_state(&self, r: usize) -> Option<&str> {
        self.row_states
            .get(r)
            .and_then(Option::as_deref)
            .filter(|s| !s.trim().is_empty())
    }

    /// Columns whose non-empty cells are all numbers are right-aligned.
    fn numeric(&self, c: usize) -> bool {
        let mut any = false;
        for r in 0..self.rows.len() {
            let v = self.cell(r, c).trim();
            if v.is_empty() {
                continue;
            }
            let looks_numeric = v
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_digit() || matches!(ch, '-' | '+' | '.'));
            if !looks_numeric || v.parse::<f64>().is_err() {
                return false;
            }
            any = true;
        }
        any
    }
}

const CELL_PAD: &str = "padding:3px 10px";
const HEAD_RULE: &str = "border-bottom:1px solid rgba(127,127,127,0.6)";
const ROW_RULE: &str = "border-bottom:1px solid rgba(127,127,127,0.18)";

/// A styled HTML table. Only inline `style=` attributes (JupyterLab keeps
/// them; it drops `<style>` from untrusted output), colors that work on
/// light and dark themes, a colored badge in the "state" column for rows
/// with a state, numeric columns right-aligned; all text HTML-escaped.
pub fn html(table: &Table) -> String {
    let ncols = table.width();
    let state_col = table.state_column();
    let numeric: Vec<bool> = (0..ncols).map(|c| table.numeric(c)).collect();
    let align = |c: usize| if numeric[c] { "right" } else { "left" };

    let mut s = String::from(
        "<table style=\"border-collapse:collapse;border-spacing:0;font-size:13px;margin:4px 0\">",
    );
    if let Some(caption) = &table.caption {
        let _ = write!(
            s,
            "<caption style=\"caption-side:top;text-align:left;font-weight:600;padding:2px 0 6px 0\">{}</caption>",
            xml_escape(caption)
        );
    }
    if ncols > 0 {
        s.push_str("<thead><tr>");
        for c in 0..ncols {
            let _ = write!(
                s,
                "<th style=\"text-align:{};{CELL_PAD};{HEAD_RULE};font-weight:600;white-space:nowrap\">{}</th>",
                align(c),
                xml_escape(table.header(c))
            );
        }
        s.push_str("</tr></thead>");
    }
    s.push_str("<tbody>");
    for r in 0..table.rows.len() {
        let state = table.row_state(r);
        s.push_str("<tr>");
        for (c, &is_numeric) in numeric.iter().enumerate() {
            let text = table.cell(r, c);
            let mut style = format!("text-align:{};{CELL_PAD};{ROW_RULE}", align(c));
            if is_numeric {
                style.push_str(";font-variant-numeric:tabular-nums");
            }
            if let (Some(st), None, 0) = (state, state_col, c) {
                let _ = write!(style, ";border-left:4px solid {}", state_color(st));
            }
            let _ = write!(s, "<td style=\"{style}\">");
            match state {
                Some(st) if Some(c) == state_col => {
                    let fill = state_color(st);
                    let label = if text.trim().is_empty() { st } else { text };
                    let _ = write!(
                        s,
                        "<span style=\"display:inline-block;background-color:{fill};color:{};\
                         border:1px solid {};border-radius:9px;padding:0 8px;font-size:12px;\
                         line-height:17px;white-space:nowrap\">{}</span>",
                        text_on(fill),
                        super::darker(fill),
                        xml_escape(label)
                    );
                }
                _ => s.push_str(&xml_escape(text)),
            }
            s.push_str("</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// An aligned monospace text table: column widths from the content (in
/// terminal columns, so wide characters line up), two spaces between
/// columns, a rule under the header, numeric columns right-aligned,
/// trailing spaces trimmed. The caption, if any, comes first.
pub fn text(table: &Table) -> String {
    let ncols = table.width();
    let numeric: Vec<bool> = (0..ncols).map(|c| table.numeric(c)).collect();
    let header: Vec<String> = (0..ncols).map(|c| one_line(table.header(c))).collect();
    let rows: Vec<Vec<String>> = (0..table.rows.len())
        .map(|r| (0..ncols).map(|c| one_line(table.cell(r, c))).collect())
        .collect();
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            rows.iter()
                .map(|row| display_width(&row[c]))
                .chain([display_width(&header[c])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c > 0 {
                l.push_str("  ");
            }
            let pad = " ".repeat(widths[c] - display_width(cell));
            if numeric[c] {
                l.push_str(&pad);
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&pad);
            }
        }
        l.trim_end().to_string()
    };

    let mut out = String::new();
    if let Some(caption) = &table.caption {
        out.push_str(&one_line(caption));
        out.push('\n');
    }
    if ncols == 0 {
        return out;
    }
    out.push_str(&line(&header));
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w.max(1))).collect();
    out.push_str(&rule.join("  "));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::xml;
    use super::*;

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    fn assets() -> Table {
        Table {
            columns: strings(&["asset", "state", "deps", "rows"]),
            rows: vec![
                strings(&["temperatures", "fresh", "", "1000000"]),
                strings(&["summary", "stale", "temperatures", "2"]),
                strings(&["plot", "", "summary", "12.5"]),
            ],
            row_states: vec![
                Some("fresh".into()),
                Some("stale".into()),
                Some("failed".into()),
            ],
            caption: Some("3 assets".into()),
        }
    }

    #[test]
    fn html_escapes_every_text() {
        let t = Table {
            columns: strings(&["a<b>", "c&d"]),
            rows: vec![strings(&["<script>x</script>", "\"q\" & 'r'"])],
            row_states: vec![],
            caption: Some("<caption & co>".into()),
        };
        let h = html(&t);
        assert!(!h.contains("<script>") && !h.contains("<b>"), "{h}");
        assert!(h.contains("a&lt;b&gt;") && h.contains("c&amp;d"), "{h}");
        assert!(h.contains("&lt;script&gt;x&lt;/script&gt;"), "{h}");
        assert!(h.contains("&lt;caption &amp; co&gt;"), "{h}");
        let root = xml::parse(&h).unwrap_or_else(|e| panic!("{e}\n{h}"));
        assert_eq!(root.find_all("td")[1].text(), "\"q\" & 'r'");
        assert_eq!(root.find_all("th")[0].text(), "a<b>");
        assert!(root.find_all("style").is_empty());
    }

    #[test]
    fn html_badges_the_state_column_with_the_state_color() {
        let h = html(&assets());
        let root = xml::parse(&h).unwrap_or_else(|e| panic!("{e}\n{h}"));
        let rows = root.find_all("tr");
        assert_eq!(rows.len(), 4, "header + 3 rows");
        let badge = |r: usize| {
            rows[r].find_all("td")[1]
                .find_all("span")
                .first()
                .map(|s| (s.text(), s.attr("style").unwrap().to_string()))
        };
        let (text, style) = badge(1).expect("fresh badge");
        assert_eq!(text, "fresh");
        assert!(style.contains(&format!("background-color:{}", state_color("fresh"))));
        assert!(style.contains("color:#ffffff"), "{style}");
        let (text, style) = badge(2).expect("stale badge");
        assert_eq!(text, "stale");
        assert!(style.contains(state_color("stale")) && style.contains("color:#1f2328"));
        // An empty state cell shows the row's state.
        let (text, style) = badge(3).expect("failed badge");
        assert_eq!(text, "failed");
        assert!(style.contains(state_color("failed")));
        // Other columns have no badge; numbers are right-aligned.
        assert!(rows[1].find_all("td")[0].find_all("span").is_empty());
        let rows_cell = rows[1].find_all("td")[3].attr("style").unwrap().to_string();
        assert!(rows_cell.contains("text-align:right"), "{rows_cell}");
        let asset_cell = rows[1].find_all("td")[0].attr("style").unwrap().to_string();
        assert!(asset_cell.contains("text-align:left"), "{asset_cell}");
        assert_eq!(root.find_all("caption")[0].text(), "3 assets");
    }

    #[test]
    fn html_without_a_state_column_stripes_the_row() {
        let t = Table {
            columns: strings(&["run", "assets"]),
            rows: vec![strings(&["r1", "3"]), strings(&["r2", "5"])],
            row_states: vec![Some("running".into()), None],
            caption: None,
        };
        let root = xml::parse(&html(&t)).unwrap();
        let tds = root.find_all("td");
        assert!(tds[0]
            .attr("style")
            .unwrap()
            .contains(&format!("border-left:4px solid {}", state_color("running"))));
        assert!(!tds[2].attr("style").unwrap().contains("border-left"));
        assert!(root.find_all("span").is_empty());
        assert!(root.find_all("caption").is_empty());
    }

    #[test]
    fn html_pads_ragged_rows() {
        let t = Table {
            columns: strings(&["a", "b"]),
            rows: vec![strings(&["1"]), strings(&["1", "2", "3"])],
            ..Table::default()
        };
        let root = xml::parse(&html(&t)).unwrap();
        assert_eq!(root.find_all("th").len(), 3);
        assert_eq!(root.find_all("td").len(), 6);
    }

    #[test]
    fn text_aligns_columns_with_a_header_rule() {
        let t = text(&assets());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            vec![
                "3 assets",
                "asset         state  deps             rows",
                "------------  -----  ------------  -------",
                "temperatures  fresh                1000000",
                "summary       stale  temperatures        2",
                "plot                 summary          12.5",
            ],
            "\n{t}"
        );
    }

    #[test]
    fn text_measures_wide_characters_in_columns() {
        let t = Table {
            columns: strings(&["name", "note"]),
            rows: vec![
                strings(&["日本", "x"]),
                strings(&["abcd", "y"]),
                strings(&["a\nb", "z"]),
            ],
            ..Table::default()
        };
        let out = text(&t);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "日本  x", "\n{out}");
        assert_eq!(lines[3], "abcd  y");
        assert_eq!(lines[4], "a b   z", "newlines become spaces");
        let note_col: Vec<usize> = lines[2..]
            .iter()
            .map(|l| display_width(&l[..l.rfind(' ').unwrap()]))
            .collect();
        assert!(note_col.windows(2).all(|w| w[0] == w[1]), "{note_col:?}");
    }

    #[test]
    fn text_of_an_empty_table_is_empty_and_header_only_is_two_lines() {
        assert_eq!(text(&Table::default()), "");
        let t = Table {
            columns: strings(&["a", "bb"]),
            ..Table::default()
        };
        assert_eq!(text(&t), "a  bb\n-  --\n");
    }
}
