"""Partitioned assets (sweeps, issue 16) on the loopback Slurm cluster,
through nbclient and the real kernel: a 100-partition asset runs as ONE job
array (scontrol and the state database say so), its tasks' lines stream
into the cell prefixed by partition, a failing partition leaves 99 done and
is reported by its key (its dependents do not run), re-running
materializes only that key, a fan-in gets the map of all partitions, a
--partitions-like asset runs as an array chained task by task (aftercorr),
--partitions-from takes its keys from another asset's value, %load
gives the map and one key, and short partitions run several per array
task (--per-task, measured short: auto) with their own output, state and
value each."""
import json
import re

import nbformat

from nbrun import db_rows, errors_of, execute, text_of


def write_notebook(path, sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def partition_rows(path, asset, run=None):
    sql = "SELECT partition, status, job_id FROM materializations WHERE asset = ? AND partition IS NOT NULL"
    args = [asset]
    if run is not None:
        sql += " AND run_id = ?"
        args.append(run)
    return db_rows(path, sql + " ORDER BY id", *args)


def runs(path):
    return [r[0] for r in db_rows(path, "SELECT id FROM runs ORDER BY id")]


def test_partitions_on_slurm_as_job_arrays(tmp_path, ssh_transport):
    (tmp_path / "slurmbook.toml").write_text(ssh_transport.slurmbook_toml())
    marker = tmp_path / "fail-17"
    marker.write_text("")
    path = write_notebook(tmp_path / "sweep.ipynb", [
        f"""%%asset sim: u64 --partitions 0..100 --max-parallel 25
println!("computing {{partition}}");
if partition == "17" && std::path::Path::new({json.dumps(str(marker))}).exists() {{
    panic!("boom in partition {{partition}}");
}}
partition_index as u64 * 10""",
        "%%asset total\nsim.values().sum::<u64>()",
        "%%asset doubled: u64 --partitions-like sim\nsim * 2",
        "%%asset keys\nvec![\"north\".to_string(), \"south-2\".to_string()]",
        "%%asset per_key: String --partitions-from keys\nformat!(\"{partition}#{partition_index}\")",
    ])
    cells = [
        "%materialize +total",                                               # 0: partition 17 fails
        "%assets",                                                           # 1
        f"std::fs::remove_file({json.dumps(str(marker))}).unwrap();",        # 2
        "%materialize +total",                                               # 3: only partition 17
        "%load total",                                                       # 4
        "%load sim",                                                         # 5
        "sim.len()",                                                         # 6
        '%load "sim[42]"',                                                   # 7
        "sim_42",                                                            # 8
        "%materialize +doubled --force",                                    # 9: aftercorr chain
        "%load doubled",                                                     # 10
        "doubled[\"5\"]",                                                    # 11
        "%materialize keys",                                                 # 12: on the cluster
        "%materialize per_key",                                              # 13
        '%load "per_key[south-2]"',                                          # 14
        "per_key_south_2",                                                   # 15
        "total",                                                             # 16
    ]
    nb = execute(path, cells=cells, allow_errors=True, timeout=900)
    out = [c.outputs for c in nb.cells]
    run_ids = runs(path)

    # 1. One array job for 100 partitions; 99 done, 17 failed and named;
    # the fan-in did not run; each task's lines are prefixed by its key.
    first = out[0]
    assert errors_of(first), first
    assert "1 of 100 partitions failed: 17" in str(first), first
    assert "boom in partition 17" in str(first), first
    stdout = text_of(first)
    for k in (0, 42, 99):
        assert re.search(rf"^\[sim\[{k}\]\] computing {k}$", stdout, re.M), stdout[-2000:]
    rows = partition_rows(path, "sim", run_ids[0])
    assert len(rows) == 100, rows
    assert sorted(r[0] for r in rows if r[1] == "failed") == ["17"], rows
    assert sum(r[1] == "ok" for r in rows) == 99, rows
    arrays = {r[2].split("_")[0] for r in rows}
    assert len(arrays) == 1, arrays
    (array,) = arrays
    records = ssh_transport.shell(f"scontrol show job -o {int(array)}").stdout.splitlines()
    assert len(records) == 100, records[:3]
    assert all(f"ArrayJobId={array} " in r for r in records), records[:3]
    assert any("ArrayTaskThrottle=25" in r for r in records), records[:3]
    assert db_rows(path, "SELECT status FROM materializations WHERE asset = 'total' AND partition IS NULL"
                         " ORDER BY id")[0][0] in ("cancelled", "skipped"), first
    assert "99/100 fresh, 1 failed (17)" in str(out[1]), out[1]

    # 2. Re-running materializes only partition 17, then the fan-in.
    assert not errors_of(out[3]), out[3]
    again = text_of(out[3])
    assert "computing 17" in again and "computing 16" not in again, again
    assert [r[:2] for r in partition_rows(path, "sim", run_ids[1])] == [("17", "ok")]
    assert not errors_of(out[4]), out[4]
    assert out[16][0]["data"]["text/plain"] == str(sum(i * 10 for i in range(100)))

    # 3. %load of the map (assembled on the cluster) and of one key.
    assert not errors_of(out[5]), out[5]
    assert out[6][0]["data"]["text/plain"] == "100"
    assert not errors_of(out[7]), out[7]
    assert out[8][0]["data"]["text/plain"] == "420"

    # 4. --partitions-like: an array after sim's array, task by task.
    assert not errors_of(out[9]), out[9]
    assert "after sim (task by task)" in text_of(out[9]), text_of(out[9])
    remote = json.loads(db_rows(path, "SELECT remote FROM runs WHERE id = ?", run_ids[2])[0][0])
    allocs = {a["name"]: a for a in remote["plan"]["allocations"]}
    assert allocs["doubled"]["after_corr"] == ["sim"], allocs
    # sim's partitions were measured short in the first run: `--per-task
    # auto` runs 4 per task (100 over its 25 slots, --max-parallel), and
    # doubled, partitioned like it, bundles alike to chain task by task.
    assert allocs["sim"]["sbatch"]["array"] == {"count": 25, "max_parallel": 25, "per_task": 4}, allocs
    assert allocs["doubled"]["sbatch"]["array"] == {"count": 25, "max_parallel": None, "per_task": 4}, allocs
    assert "job array: 4 partitions per task, one after another (auto: the last run's partitions took" \
        in text_of(out[9]), text_of(out[9])
    doubled_rows = partition_rows(path, "doubled", run_ids[2])
    assert len(doubled_rows) == 100
    assert all(r[1] == "ok" for r in doubled_rows), doubled_rows
    # Partition i ran in task i // 4 of the array.
    key_task = {r[0]: r[2].split("_")[1] for r in doubled_rows}
    assert all(key_task[str(i)] == str(i // 4) for i in range(100)), key_task
    assert not errors_of(out[10]), out[10]
    assert out[11][0]["data"]["text/plain"] == "100"

    # 5. --partitions-from: the keys are the value of `keys` (on the cluster).
    assert not errors_of(out[12]) and not errors_of(out[13]), (out[12], out[13])
    assert sorted(r[:2] for r in partition_rows(path, "per_key")) == [("north", "ok"), ("south-2", "ok")]
    assert not errors_of(out[14]), out[14]
    assert out[15][0]["data"]["text/plain"] == '"south-2#1"'


def test_several_partitions_per_array_task(tmp_path, ssh_transport):
    """--per-task 4: 10 partitions in 3 tasks (4, 4, 2), each partition with
    its own prefixed output, state and value; a failing one leaves the
    others of its task done and is named; re-running runs only it."""
    (tmp_path / "slurmbook.toml").write_text(ssh_transport.slurmbook_toml())
    marker = tmp_path / "fail-5"
    marker.write_text("")
    path = write_notebook(tmp_path / "bundled.ipynb", [
        f"""%%asset sq: u64 --partitions 0..10 --per-task 4
println!("square of {{partition}}");
if partition == "5" && std::path::Path::new({json.dumps(str(marker))}).exists() {{
    panic!("bad five");
}}
(partition_index * partition_index) as u64""",
        "%%asset sum_sq\nsq.values().sum::<u64>()",
    ])
    cells = [
        "%materialize +sum_sq",                                            # 0: 5 fails
        "%assets",                                                         # 1
        f"std::fs::remove_file({json.dumps(str(marker))}).unwrap();",      # 2
        "%materialize +sum_sq",                                            # 3: only 5
        "%load sum_sq",                                                    # 4
        "sum_sq",                                                          # 5
        '%load "sq[9]"',                                                   # 6
        "sq_9",                                                            # 7
    ]
    nb = execute(path, cells=cells, allow_errors=True, timeout=600)
    out = [c.outputs for c in nb.cells]
    run_ids = runs(path)
    first = out[0]
    assert "job array: 4 partitions per task, one after another (--per-task 4)" in text_of(first), text_of(first)
    assert "1 of 10 partitions failed: 5" in str(first), first
    assert "bad five" in str(first), first
    stdout = text_of(first)
    for k in range(10):
        assert re.search(rf"^\[sq\[{k}\]\] square of {k}$", stdout, re.M), stdout[-2000:]
    rows = partition_rows(path, "sq", run_ids[0])
    assert sorted(r[0] for r in rows if r[1] == "ok") == [str(k) for k in range(10) if k != 5], rows
    assert [r[0] for r in rows if r[1] == "failed"] == ["5"], rows
    (array,) = {r[2].split("_")[0] for r in rows}
    assert {r[0]: r[2] for r in rows} == {str(k): f"{array}_{k // 4}" for k in range(10)}, rows
    records = ssh_transport.shell(f"scontrol show job -o {int(array)}").stdout.splitlines()
    assert len(records) == 3, records
    states = sorted(re.search(r"JobState=(\S+)", r)[1] for r in records)
    assert states == ["COMPLETED", "COMPLETED", "FAILED"], states
    assert db_rows(path, "SELECT status FROM materializations WHERE asset = 'sum_sq' ORDER BY id")[0][0] \
        in ("cancelled", "skipped"), first
    assert "9/10 fresh, 1 failed (5)" in str(out[1]), out[1]
    # Re-running runs only partition 5 (one task of one), then the fan-in.
    assert not errors_of(out[3]), out[3]
    again = text_of(out[3])
    assert "square of 5" in again and "square of 4" not in again, again
    assert [r[:2] for r in partition_rows(path, "sq", run_ids[1])] == [("5", "ok")]
    assert not errors_of(out[4]), out[4]
    assert out[5][0]["data"]["text/plain"] == str(sum(k * k for k in range(10)))
    assert not errors_of(out[6]), out[6]
    assert out[7][0]["data"]["text/plain"] == "81"


def test_more_partitions_than_max_array_size_are_refused_before_anything_runs(tmp_path, ssh_transport):
    (tmp_path / "slurmbook.toml").write_text(ssh_transport.slurmbook_toml())
    path = write_notebook(tmp_path / "big.ipynb", [
        "%%asset huge: u64 --partitions 0..1002\npartition_index as u64",
        "%%asset bundled: u64 --partitions 0..1002 --per-task 2\npartition_index as u64",
    ])
    nb = execute(path, cells=['%materialize huge', '%materialize "huge[0..1001]" --dry-run',
                              '%materialize bundled --dry-run'], allow_errors=True)
    (err,) = errors_of(nb.cells[0].outputs)
    assert "1002 array tasks are more than this cluster allows in one job array (MaxArraySize=1001" \
        in err["evalue"], err
    assert db_rows(path, "SELECT COUNT(*) FROM materializations WHERE asset = 'huge'") == [(0,)]
    # The way out: a selection of at most MaxArraySize partitions plans one array.
    assert not errors_of(nb.cells[1].outputs), nb.cells[1].outputs
    assert "array=0-1000" in text_of(nb.cells[1].outputs), text_of(nb.cells[1].outputs)
    # Or several partitions per task: 1002 partitions in 501 tasks.
    assert not errors_of(nb.cells[2].outputs), nb.cells[2].outputs
    assert "array=0-500" in text_of(nb.cells[2].outputs), text_of(nb.cells[2].outputs)
