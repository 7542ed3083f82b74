"""Partitioned assets (sweeps, issue 16) in the kernel, through nbclient and
the real kernel: partitions run in parallel processes of the job binary (at
most --max-parallel at once), a panicking partition leaves the others done
and is reported by its key, re-running materializes only that key, a fan-in
downstream gets the map, --partitions-like gets the matching partition,
--partitions-from takes its keys from another asset's value, %load of the
map and of one key, the %assets summary, and bad declarations rejected
naming the key."""
import json
import re

import nbformat

from nbrun import db_rows, errors_of, execute, text_of


def write_notebook(path, sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def sim_body(work):
    # Each partition marks itself running, checks that no more than 3 run at
    # once (--max-parallel 3), and waits (at most a minute) until another
    # partition has started: with one process at a time it would panic.
    return f"""%%asset sim: u64 --partitions 0..6 --max-parallel 3
let dir = std::path::Path::new({json.dumps(str(work))});
std::fs::write(dir.join(format!("running-{{partition}}")), b"").unwrap();
std::fs::write(dir.join(format!("started-{{partition}}")), b"").unwrap();
let count = |prefix: &str| std::fs::read_dir(dir).unwrap()
    .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(prefix)).count();
assert!(count("running-") <= 3, "more than 3 partitions at once");
let mut waited = 0;
while count("started-") < 2 {{
    assert!(waited < 600, "partition {{partition}} ran alone: partitions do not run in parallel");
    std::thread::sleep(std::time::Duration::from_millis(100));
    waited += 1;
}}
println!("computing {{partition}}");
std::fs::remove_file(dir.join(format!("running-{{partition}}"))).unwrap();
if dir.join(format!("fail-{{partition}}")).exists() {{
    panic!("boom in partition {{partition}}");
}}
partition_index as u64 * 10"""


PER_KEY = "%%asset per_key: String --partitions-from keys\nformat!(\"{partition}#{partition_index}\")"


def partition_rows(path, asset):
    return db_rows(path, "SELECT partition, status FROM materializations WHERE asset = ? AND partition IS NOT NULL "
                         "ORDER BY id", asset)


def test_partitions_in_the_kernel(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "fail-3").write_text("")
    path = write_notebook(tmp_path / "sweep.ipynb", [
        sim_body(work),
        "%%asset total\nsim.values().sum::<u64>()",
        "%%asset doubled: String --partitions-like sim\nformat!(\"{partition}:{}\", sim * 2)",
        "%%asset keys\nvec![\"north\".to_string(), \"south-2\".to_string()]",
        PER_KEY,
    ])
    cells = [
        "%materialize +total,doubled",                                        # 0: partition 3 panics
        "%assets",                                                            # 1
        f"std::fs::remove_file({json.dumps(str(work / 'fail-3'))}).unwrap();",          # 2
        "%materialize +total",                                                # 3: only partition 3
        "total",                                                              # 4
        "%load sim",                                                          # 5
        "sim.len()",                                                          # 6
        '%load "sim[4]"',                                                     # 7
        "sim_4",                                                              # 8
        '%materialize "sim[1,4]" --force',                                   # 9
        "%materialize doubled",                                               # 10
        "doubled[\"5\"].clone()",                                             # 11
        "%materialize per_key",                                               # 12: keys never materialized
        "%materialize +per_key",                                              # 13: keys runs, per_key waits
        "%materialize per_key",                                               # 14
        "per_key.iter().map(|(k, v)| format!(\"{k}={v}\")).collect::<Vec<_>>().join(\",\")",  # 15
        "%materialize +per_key",                                              # 16: all fresh
        '%materialize "sim[3,99]"',                                          # 17: no such key
        '%materialize "total[1]"',                                           # 18: not partitioned
        "%assets",                                                            # 19
        PER_KEY,                                                              # 20: the cell itself: all partitions
    ]
    nb = execute(path, cells=cells, allow_errors=True)
    out = [c.outputs for c in nb.cells]

    # 1. A panicking partition fails alone; the fan-in does not run.
    first = out[0]
    err = text_of(first, "stderr") + text_of(first)
    assert "boom in partition 3" in err, err
    assert "1 of 6 partitions failed: 3" in str(first), first
    # doubled (partitioned like sim) runs the partitions whose sim partition is done.
    assert "partition doubled[3] not run: upstream sim[3] failed" in err, err
    doubled = partition_rows(path, "doubled")
    assert sorted(doubled[:6]) == sorted([(str(k), "ok") for k in (0, 1, 2, 4, 5)] + [("3", "skipped")]), doubled
    assert errors_of(first), first
    assert re.search(r"\[sim\[0\]\] computing 0", text_of(first)), text_of(first)
    rows = partition_rows(path, "sim")
    assert sorted(rows[:6]) == sorted([(str(k), "ok") for k in (0, 1, 2, 4, 5)] + [("3", "failed")]), rows
    assert db_rows(path, "SELECT status FROM materializations WHERE asset = 'total' AND partition IS NULL "
                         "ORDER BY id") == [("skipped",), ("ok",)]
    assert "5/6 fresh, 1 failed (3)" in str(out[1]), out[1]

    # 2. Re-running materializes only the failed key, then the fan-in gets the map.
    assert not errors_of(out[3]), out[3]
    again = text_of(out[3])
    assert "computing 3" in again and "computing 0" not in again, again
    rows = partition_rows(path, "sim")
    assert rows[6:7] == [("3", "ok")], rows
    assert out[4][0]["data"]["text/plain"] == "150"

    # 3. %load of the map and of one key.
    assert not errors_of(out[5]) and "loaded sim" in text_of(out[5]), out[5]
    assert out[6][0]["data"]["text/plain"] == "6"
    assert "loaded sim[4] as sim_4: u64" in text_of(out[7]), out[7]
    assert out[8][0]["data"]["text/plain"] == "40"

    # 4. A selection of partitions runs exactly those.
    assert not errors_of(out[9]), out[9]
    assert sorted(partition_rows(path, "sim")[7:]) == [("1", "ok"), ("4", "ok")]
    assert len(partition_rows(path, "sim")) == 9

    # 5. --partitions-like: partition 5 gets sim's partition 5.
    assert not errors_of(out[10]), out[10]
    assert out[11][0]["data"]["text/plain"] == '"5:100"'
    assert partition_rows(path, "doubled")[6:] == [("3", "ok")]

    # 6. --partitions-from: keys first, then the partitions named by its value.
    assert "materialize `keys` first" in errors_of(out[12])[0]["evalue"], out[12]
    assert "materialize `per_key` again once `keys` is done" in str(out[13]), out[13]
    assert db_rows(path, "SELECT status FROM materializations WHERE asset = 'keys'") == [("ok",), ("skipped",)]
    assert not errors_of(out[14]), out[14]
    assert out[15][0]["data"]["text/plain"] == '"north=north#0,south-2=south-2#1"'
    assert not errors_of(out[16]), out[16]

    # 7. Bad selections say what is wrong, and nothing ran.
    assert "no partition `99`" in errors_of(out[17])[0]["evalue"], out[17]
    assert "not partitioned" in errors_of(out[18])[0]["evalue"], out[18]
    assert re.search(r"sim\s.*6/6 fresh", str(out[19])), out[19]

    # 8. Running a partitioned asset's cell runs all its partitions.
    assert not errors_of(out[20]), out[20]
    assert [k for k, _ in partition_rows(path, "per_key")] == ["north", "south-2"] * 2


def test_bad_partition_declarations_name_the_key(tmp_path):
    path = write_notebook(tmp_path / "bad.ipynb", ["%%asset ok\n1"])
    nb = execute(path, cells=[
        "%materialize ok",
        "%%asset a --partitions x,y,x\n1",
        "%%asset b --partitions 5..5\n1",
        "%%asset c --partitions 'p,q;rm -rf'\n1",
        "%%asset d --partitions 0..3 --partitions-from ok\n1",
        "%%asset e --partitions-from nothing\n1",
        "1 + 1",
    ], allow_errors=True)
    evalue = [errors_of(c.outputs)[0]["evalue"] if errors_of(c.outputs) else "" for c in nb.cells[1:]]
    assert "`x` is given twice" in evalue[0], evalue[0]
    assert "empty partition set" in evalue[1], evalue[1]
    assert "`q;rm -rf`" in evalue[2] and "not safe" in evalue[2], evalue[2]
    assert "--partitions-from" in evalue[3], evalue[3]
    assert "nothing" in evalue[4], evalue[4]
    # The kernel is fine, and nothing was recorded for the bad cells.
    assert nb.cells[6].outputs[0]["data"]["text/plain"] == "2"
    assert db_rows(path, "SELECT COUNT(*) FROM materializations WHERE asset IN ('a','b','c','d','e')") == [(0,)]
