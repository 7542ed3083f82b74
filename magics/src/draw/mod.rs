//! Pure rendering, with no Jupyter types: the asset graph as Mermaid, SVG or
//! plain text ([`graph`]), tables as HTML or aligned text ([`table`]), a
//! run's timeline as a Gantt chart ([`timeline`]) and small line plots
//! ([`plot`]);
//! plus the text helpers they share (escaping, truncation, measuring).
//!
//! Everything here is a function from plain data to a `String`; the kernel
//! decides which MIME type each string goes out as.

pub mod graph;
mod layout;
mod mermaid;
mod model;
pub mod plot;
mod state;
mod svg;
pub mod table;
mod text;
pub mod timeline;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Escapes text for XML/HTML content and attribute values, and drops the
/// characters XML 1.0 does not allow (C0 controls other than tab/newline/CR).
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One line of display text: newlines and tabs become spaces, other control
/// characters are dropped.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Keeps at most `max` characters, replacing the tail with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Width of a string in terminal columns (East Asian wide characters and
/// emoji count 2, combining marks 0), as `unicode-width` measures it.
pub(crate) fn display_width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Advance widths (in thousandths of an em) of the printable ASCII characters, 0x20..=0x7E, in
/// DejaVu Sans, the widest of the common `sans-serif` fonts (Arial,
/// Helvetica, Liberation Sans, Segoe UI and San Francisco are all narrower),
/// so text measured with it fits wherever the SVG is shown.
#[rustfmt::skip]
const ASCII_MILLI_EM: [u16; 95] = [
     318,  401,  460,  838,  636,  950,  780,  275,  390,  390, // ' '..')'
     500,  838,  318,  361,  318,  337,  636,  636,  636,  636, // '*'..'3'
     636,  636,  636,  636,  636,  636,  337,  337,  838,  838, // '4'..'='
     838,  531, 1000,  684,  686,  698,  770,  632,  575,  775, // '>'..'G'
     752,  295,  295,  656,  557,  863,  748,  787,  603,  787, // 'H'..'Q'
     695,  635,  611,  732,  684,  989,  685,  611,  685,  390, // 'R'..'['
     337,  390,  838,  500,  500,  613,  635,  550,  635,  615, // '\\'..'e'
     352,  635,  634,  278,  278,  579,  278,  974,  634,  612, // 'f'..'o'
     635,  635,  411,  521,  392,  634,  592,  818,  592,  592, // 'p'..'y'
     525,  636,  337,  636,  838,                               // 'z'..'~'
];

/// Estimated rendered width in pixels of `s` in a sans-serif font of
/// `font_px` pixels; errs on the wide side.
pub(crate) fn text_px(s: &str, font_px: f64) -> f64 {
    let em: f64 = s
        .chars()
        .map(|c| {
            let u = c as u32;
            if (0x20..0x7f).contains(&u) {
                f64::from(ASCII_MILLI_EM[(u - 0x20) as usize]) / 1000.0
            } else {
                match UnicodeWidthChar::width(c).unwrap_or(0) {
                    0 => 0.0,
                    1 => 0.8,
                    _ => 1.05,
                }
            }
        })
        .sum();
    em * font_px * 1.04
}

/// Parses `#rrggbb`.
fn rgb(hex: &str) -> Option<(u8, u8, u8)> {
    let h = hex.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let p = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok();
    Some((p(0)?, p(2)?, p(4)?))
}

/// The text color (near-black or white) with the better contrast on `fill`.
pub(crate) fn text_on(fill: &str) -> &'static str {
    let Some((r, g, b)) = rgb(fill) else {
        return "#1f2328";
    };
    let lin = |v: u8| {
        let c = f64::from(v) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    // Above ~0.18, black text has the higher WCAG contrast ratio.
    if l > 0.18 {
        "#1f2328"
    } else {
        "#ffffff"
    }
}

/// A darker shade of `fill`, for borders.
pub(crate) fn darker(fill: &str) -> String {
    let (r, g, b) = rgb(fill).unwrap_or((0x90, 0x90, 0x90));
    let d = |v: u8| (f64::from(v) * 0.7).round() as u8;
    format!("#{:02x}{:02x}{:02x}", d(r), d(g), d(b))
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
pub(crate) mod xml {
    //! For the tests: a document parsed by `roxmltree` (which rejects anything
    //! not well-formed XML), copied into an owned element tree with decoded
    //! text, and the few queries the tests make of it.

    #[derive(Debug, Clone)]
    pub struct Element {
        pub name: String,
        pub attrs: Vec<(String, String)>,
        pub children: Vec<Node>,
    }

    #[derive(Debug, Clone)]
    pub enum Node {
        Element(Element),
        Text(String),
    }

    impl Element {
        pub fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
        pub fn num(&self, name: &str) -> f64 {
            self.attr(name)
                .unwrap_or_else(|| panic!("<{}> has no {name}", self.name))
                .parse()
                .unwrap_or_else(|_| panic!("<{}> {name} is not a number", self.name))
        }
        pub fn has_class(&self, class: &str) -> bool {
            self.attr("class")
                .is_some_and(|c| c.split_whitespace().any(|x| x == class))
        }
        /// All text below this element, concatenated.
        pub fn text(&self) -> String {
            let mut s = String::new();
            for c in &self.children {
                match c {
                    Node::Text(t) => s.push_str(t),
                    Node::Element(e) => s.push_str(&e.text()),
                }
            }
            s
        }
        /// Every element below (and including) this one, depth first.
        pub fn descendants(&self) -> Vec<&Element> {
            let mut out = vec![self];
            for c in &self.children {
                if let Node::Element(e) = c {
                    out.extend(e.descendants());
                }
            }
            out
        }
        pub fn find_all(&self, name: &str) -> Vec<&Element> {
            self.descendants()
                .into_iter()
                .filter(|e| e.name == name)
                .collect()
        }
    }

    fn own(node: roxmltree::Node) -> Element {
        Element {
            name: node.tag_name().name().to_string(),
            attrs: node
                .attributes()
                .map(|a| (a.name().to_string(), a.value().to_string()))
                .collect(),
            children: node
                .children()
                .filter_map(|c| {
                    if c.is_element() {
                        Some(Node::Element(own(c)))
                    } else if c.is_text() {
                        c.text().map(|t| Node::Text(t.to_string()))
                    } else {
                        None
                    }
                })
                .collect(),
        }
    }

    /// Parses a whole document (optional XML declaration, one root).
    pub fn parse(s: &str) -> Result<Element, String> {
        let doc = roxmltree::Document::parse(s).map_err(|e| e.to_string())?;
        Ok(own(doc.root_element()))
    }

    #[test]
    fn checker_rejects_malformed_documents() {
        assert!(parse("<a><b/></a>").is_ok());
        assert!(parse("<a x=\"1\">t &amp; &#x41;</a>").is_ok());
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>x < y</a>").is_err());
        assert!(parse("<a>fish & chips</a>").is_err());
        assert!(parse("<a x=1/>").is_err());
        assert!(parse("<a x=\"1\" x=\"2\"/>").is_err());
        assert!(parse("<a/><b/>").is_err());
        let e = parse("<a><b c=\"&lt;\">x</b>y</a>").unwrap();
        assert_eq!(e.text(), "xy");
        assert_eq!(e.find_all("b")[0].attr("c"), Some("<"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escape_escapes_markup_and_drops_invalid_controls() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\u{7}d"),
            "a&lt;b&gt;&amp;&quot;c&#39;d"
        );
        assert!(xml::parse(&format!("<t a=\"{0}\">{0}</t>", xml_escape("<&>\"'\u{0}"))).is_ok());
    }

    #[test]
    fn truncate_adds_an_ellipsis_only_when_cutting() {
        assert_eq!(truncate("short", 28), "short");
        let long = "a".repeat(40);
        let t = truncate(&long, 28);
        assert_eq!(t.chars().count(), 28);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("ééééé", 3), "éé…");
    }

    #[test]
    fn display_width_counts_wide_and_zero_width_characters() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
        assert_eq!(display_width("✓2"), 2);
    }

    #[test]
    fn text_px_is_monotone_and_wider_for_wide_glyphs() {
        assert!(text_px("mmmm", 13.0) > text_px("iiii", 13.0));
        assert!(text_px("abcd", 13.0) > text_px("abc", 13.0));
        assert!(text_px("日本", 13.0) > text_px("ab", 13.0));
        // DejaVu Sans 'a' at 13 px is ~8 px wide; the estimate must not be less.
        assert!(text_px("a", 13.0) >= 0.613 * 13.0);
    }

    #[test]
    fn text_color_contrasts_with_fill() {
        assert_eq!(text_on("#ffffff"), "#1f2328");
        assert_eq!(text_on("#000000"), "#ffffff");
        assert_eq!(text_on("#c62828"), "#ffffff");
        assert_eq!(text_on("#f9a825"), "#1f2328");
        assert_eq!(darker("#ffffff"), "#b3b3b3");
    }
}
