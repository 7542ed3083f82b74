//! `slurmbook fmt` on a real notebook file with the toolchain's rustfmt:
//! the right cells change, magic lines and the broken cell stay, and every
//! byte outside the changed sources is the same.

use slurmbook_magics::tooling::fmt::format_notebook;

/// A `source` list as nbformat writes it (indent 1).
fn src(s: &str) -> String {
    let lines: Vec<String> = s
        .split_inclusive('\n')
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    format!("[\n    {}\n   ]", lines.join(",\n    "))
}

/// The notebook's text with these cell sources; outputs and metadata with
/// spacing and escapes that a re-serialization would not keep.
fn notebook(sources: [&str; 6]) -> String {
    format!(
        r#"{{
 "cells": [
  {{
   "cell_type": "markdown",
   "id": "m0",
   "metadata": {{}},
   "source": {}
  }},
  {{
   "cell_type": "code",
   "execution_count": 3,
   "id": "c1",
   "metadata": {{"tags": ["keep"],   "collapsed": false}},
   "outputs": [{{"output_type": "stream", "name": "stdout", "text": ["caf\u00e9 \u2713\n"]}}],
   "source": {}
  }},
  {{
   "cell_type": "code",
   "execution_count": null,
   "id": "c2",
   "metadata": {{}},
   "outputs": [],
   "source": {}
  }},
  {{
   "cell_type": "code",
   "execution_count": null,
   "id": "c3",
   "metadata": {{}},
   "outputs": [],
   "source": {}
  }},
  {{
   "cell_type": "code",
   "execution_count": null,
   "id": "c4",
   "metadata": {{}},
   "outputs": [],
   "source": {}
  }},
  {{
   "cell_type": "code",
   "execution_count": null,
   "id": "c5",
   "metadata": {{}},
   "outputs": [],
   "source": "{}"
  }}
 ],
 "metadata": {{"kernelspec": {{"name": "slurmbook", "display_name": "Rust (slurmbook)", "language": "rust"}}}},
 "nbformat": 4,
 "nbformat_minor": 5
}}
"#,
        src(sources[0]),
        src(sources[1]),
        src(sources[2]),
        src(sources[3]),
        src(sources[4]),
        sources[5],
    )
}

const MARKDOWN: &str = "# Title\n\nlet   x=1;";
const PLAIN: &str =
    ":dep serde_json = \"1\"\nfn double( x:u64 )->u64{x*2}\n%graph\nlet y=double(2);\ny";
const PLAIN_FORMATTED: &str =
    ":dep serde_json = \"1\"\nfn double(x: u64) -> u64 {\n    x * 2\n}\n%graph\nlet y = double(2);\ny";
const ASSET: &str = "%%asset stats: (u64, usize) --cpus=2   --group=analyse\nlet v=vec![1u64,2,3];\n(v.iter().sum::<u64>(),v.len())";
const ASSET_FORMATTED: &str = "%%asset stats: (u64, usize) --cpus=2   --group=analyse\nlet v = vec![1u64, 2, 3];\n(v.iter().sum::<u64>(), v.len())";
const BROKEN: &str = "%%asset broken\nlet x = (1 +;\nx";
const MAGIC: &str = "%materialize   +stats";
const CLEAN: &str = "let z = 1;";

#[test]
fn formats_the_right_cells_and_keeps_every_other_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nb.ipynb");
    let before = notebook([MARKDOWN, PLAIN, ASSET, BROKEN, MAGIC, CLEAN]);
    std::fs::write(&path, &before).unwrap();

    // --check: reports, changes nothing.
    let report = format_notebook(&path, "2021", true).unwrap();
    assert_eq!(report.changed, ["cell 1", "cell 2 (asset `stats`)"]);
    assert_eq!(report.unparsable.len(), 1, "{:?}", report.unparsable);
    assert_eq!(report.unparsable[0].0, "cell 3 (asset `broken`)");
    assert!(
        report.unparsable[0].1.starts_with("line 2:"),
        "{:?}",
        report.unparsable
    );
    assert!(!report.written);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    // Formatting rewrites exactly the two sources.
    let report = format_notebook(&path, "2021", false).unwrap();
    assert!(report.written);
    let expected = notebook([
        MARKDOWN,
        PLAIN_FORMATTED,
        ASSET_FORMATTED,
        BROKEN,
        MAGIC,
        CLEAN,
    ]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["nb.ipynb"]);

    // Now --check passes, and formatting again writes nothing.
    let report = format_notebook(&path, "2021", true).unwrap();
    assert!(report.changed.is_empty(), "{:?}", report.changed);
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let report = format_notebook(&path, "2021", false).unwrap();
    assert!(!report.written);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
}

#[test]
fn a_file_that_is_not_a_notebook_is_an_error_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ipynb");
    std::fs::write(&path, "{\"cells\": [1, 2]}").unwrap();
    let e = format_notebook(&path, "2021", false).unwrap_err();
    assert!(e.to_string().contains("not a Jupyter notebook"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"cells\": [1, 2]}"
    );
    let e = format_notebook(&dir.path().join("missing.ipynb"), "2021", false).unwrap_err();
    assert!(e.to_string().contains("missing.ipynb"), "{e}");
}
