//! Property tests (proptest) of what reads untrusted text: the cell and
//! line-magic parsers, the selection grammar, and the demultiplexer of
//! `tail`'s stream. Each runs a bounded number of cases (proptest's default
//! 256, or the count below), so CI time stays predictable; a failure prints
//! the smallest input that shows it.

use proptest::prelude::*;
use slurmbook_magics::events::Stream;
use slurmbook_magics::exec::slurm::stream::{Demux, Piece};
use slurmbook_magics::model::is_keyword;
use slurmbook_magics::syntax::magic::parse_line_magic;
use slurmbook_magics::syntax::parse_cell;
use slurmbook_magics::syntax::selection::parse_selection;

/// Text that looks like magics: their words, options, quotes, operators and
/// odd characters, so most cases get past the first token.
fn magicish() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("%%asset".to_string()),
        Just("%%check".to_string()),
        Just("%materialize".to_string()),
        Just("%config".to_string()),
        Just("%load".to_string()),
        Just("%graph".to_string()),
        Just("%assets".to_string()),
        Just("%runs".to_string()),
        Just("--target".to_string()),
        Just("--deps".to_string()),
        Just("--mem".to_string()),
        Just("--time".to_string()),
        Just("--freshness".to_string()),
        Just("--partition".to_string()),
        Just("=".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just("$(x)".to_string()),
        "[a-z_][a-z0-9_]{0,6}",
        "[0-9]{1,4}[KMGT]?",
        "\\PC{1,4}",
    ];
    prop::collection::vec(word, 0..12).prop_map(|w| w.join(" "))
}

/// Asset names: identifiers that are not Rust keywords (`do`, `fn`, ...
/// are refused, rightly) nor selection keywords.
fn asset_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,12}".prop_filter("not a keyword", |n| {
        !is_keyword(n) && !["and", "or", "not", "stale", "overdue", "warn"].contains(&n.as_str())
    })
}

proptest! {
    #[test]
    fn the_cell_parser_never_panics(src in prop_oneof![magicish(), any::<String>()]) {
        // An error is a value with a message, never a panic.
        if let Err(e) = parse_cell(&src) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn the_line_magic_parser_never_panics(line in magicish()) {
        if let Err(e) = parse_line_magic(&line) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn an_asset_header_with_valid_options_parses_to_its_name(
        name in asset_name(),
        mem in prop::option::of((1u32..4096, prop::sample::select(vec!["K", "M", "G"]))),
        cpus in prop::option::of(1u32..64),
        deps in prop::collection::vec(asset_name(), 0..4),
    ) {
        let mut header = format!("%%asset {name}");
        if let Some((n, unit)) = mem {
            header.push_str(&format!(" --mem {n}{unit}"));
        }
        if let Some(c) = cpus {
            header.push_str(&format!(" --cpus {c}"));
        }
        if !deps.is_empty() {
            header.push_str(&format!(" --deps {}", deps.join(",")));
        }
        let cell = parse_cell(&format!("{header}\n1 + 1"));
        let cell = cell.map_err(|e| TestCaseError::fail(format!("{header}: {e}")))?;
        let text = format!("{cell:?}");
        prop_assert!(text.contains(&format!("{name:?}")), "{header} gave {text}");
    }
}

/// Selections built from the grammar: atoms, combined with `,`, and, or,
/// not and parentheses.
fn selection_text() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        "[a-z][a-z0-9_]{0,5}",
        "\\+[a-z][a-z0-9_]{0,5}",
        "[a-z][a-z0-9_]{0,5}\\+",
        "[1-3]\\+[a-z][a-z0-9_]{0,3}",
        "[a-z][a-z0-9_]{0,3}\\+[1-3]",
        Just("*".to_string()),
        Just("stale".to_string()),
        Just("overdue".to_string()),
        Just("warn".to_string()),
        "group:[a-z]{1,4}",
        "tag:[a-z]{1,3}(=[a-z0-9]{1,3})?",
    ];
    atom.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}, {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

proptest! {
    #[test]
    fn the_selection_parser_never_panics_and_points_into_the_text(
        text in prop_oneof![selection_text(), any::<String>(), "[ a-z()+*,:=]{0,30}"]
    ) {
        if let Err(e) = parse_selection(&text) {
            // The column is 1-based and at most one past the end.
            prop_assert!(e.column >= 1 && e.column <= text.chars().count() + 1,
                "column {} for {:?}", e.column, text);
        }
    }

    #[test]
    fn a_selection_prints_as_text_that_parses_back_to_it(text in selection_text()) {
        // Keywords as names (`and`, `not`, ...) make some generated texts
        // invalid; those must fail cleanly, the rest round-trip.
        if let Ok(sel) = parse_selection(&text) {
            let printed = sel.to_string();
            let again = parse_selection(&printed)
                .map_err(|e| TestCaseError::fail(format!("{text:?} printed as {printed:?}: {e}")))?;
            prop_assert_eq!(again, sel, "{:?} printed as {:?}", text, printed);
        }
    }
}

// ---- tail's stream ----------------------------------------------------

const FILES: [&str; 3] = ["/r/a.out", "/r/a.err", "/r/b.out"];

fn demux(offsets: [u64; 3]) -> Demux {
    Demux::new(vec![
        (0, Stream::Stdout, FILES[0].into(), offsets[0]),
        (0, Stream::Stderr, FILES[1].into(), offsets[1]),
        (1, Stream::Stdout, FILES[2].into(), offsets[2]),
    ])
}

/// Writes to the three files, in the order tail sees them. Data has no
/// `=` (a line `==> NAME <==` inside a file is ambiguous in tail's format
/// itself) and no protocol prefix.
fn writes() -> impl Strategy<Value = Vec<(usize, String)>> {
    prop::collection::vec((0..3usize, "[a-z0-9 \n\u{e9}\u{4e2d}]{1,40}"), 0..30)
}

/// GNU tail's stream for those writes (`tail -F -v -c +1`): a header when
/// the file changes, every header but the first after one separator `\n`.
fn tail_stream(writes: &[(usize, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut current = None;
    for (file, data) in writes {
        if current != Some(*file) {
            if current.is_some() {
                out.push(b'\n');
            }
            out.extend_from_slice(format!("==> {} <==\n", FILES[*file]).as_bytes());
            current = Some(*file);
        }
        out.extend_from_slice(data.as_bytes());
    }
    out
}

fn contents(writes: &[(usize, String)]) -> [String; 3] {
    let mut files: [String; 3] = Default::default();
    for (file, data) in writes {
        files[*file].push_str(data);
    }
    files
}

fn shown(pieces: &[Piece]) -> [String; 3] {
    let mut files: [String; 3] = Default::default();
    for piece in pieces {
        if let Piece::Output { job, stream, text } = piece {
            let index = match (job, stream) {
                (0, Stream::Stdout) => 0,
                (0, Stream::Stderr) => 1,
                _ => 2,
            };
            files[index].push_str(text);
        }
    }
    files
}

/// Feeds `stream` cut at `cuts` (positions, any order), with the idle
/// flush of partial lines after the pieces listed in `idle`.
fn feed(d: &mut Demux, stream: &[u8], cuts: &[usize], idle: &[bool], out: &mut Vec<Piece>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut start = 0;
    for (i, &end) in cuts.iter().chain([stream.len()].iter()).enumerate() {
        d.feed(&stream[start..end], out);
        if idle.get(i).copied().unwrap_or(false) {
            d.flush_partials(out);
        }
        start = end;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_of_the_stream_gives_back_each_files_bytes_in_order(
        writes in writes(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        idle in prop::collection::vec(any::<bool>(), 0..21),
    ) {
        let stream = tail_stream(&writes);
        let mut d = demux([0; 3]);
        let mut out = Vec::new();
        feed(&mut d, &stream, &cuts, &idle, &mut out);
        d.finish(&mut out);
        let expected = contents(&writes);
        prop_assert_eq!(shown(&out), expected.clone());
        prop_assert_eq!(d.offsets(0), (expected[0].len() as u64, expected[1].len() as u64));
        prop_assert_eq!(d.offsets(1).0, expected[2].len() as u64);
    }

    #[test]
    fn stopping_anywhere_and_resuming_at_the_offsets_loses_and_repeats_nothing(
        writes in writes(),
        stop in any::<usize>(),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let stream = tail_stream(&writes);
        let stop = stop % (stream.len() + 1);
        // First watcher: sees a prefix, then is killed (no finish).
        let mut first = demux([0; 3]);
        let mut out = Vec::new();
        feed(&mut first, &stream[..stop], &cuts, &[], &mut out);
        let (a_out, a_err) = first.offsets(0);
        let (b_out, _) = first.offsets(1);
        // Second watcher: tail starts at byte 1 again, skipping the offsets.
        let mut second = demux([a_out, a_err, b_out]);
        feed(&mut second, &stream, &cuts, &[], &mut out);
        second.finish(&mut out);
        prop_assert_eq!(shown(&out), contents(&writes));
    }
}
