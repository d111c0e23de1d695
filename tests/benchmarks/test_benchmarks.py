"""The benchmark suite (``python -m benchmarks``) in ``--quick`` mode: it runs, checks and reports.

LiberTEM is not installed here: the LiberTEM peer is tested with a fake peer Python
that answers as ``benchmarks/peer_libertem.py`` would, and the peer script's own
argument handling is tested in this environment (it imports libertem only to run).
No test asserts a timing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

# `benchmarks` lives beside `dataflow` in the repository but is not installed: put the
# repository root on sys.path before importing it
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import memory, peer_libertem, runner
from benchmarks.__main__ import main
from benchmarks.data import SOURCES, DataCache, random_roi
from benchmarks.peer import LIBERTEM_VERSION, PeerError, ensure_venv, parse_output
from benchmarks.runner import BenchmarkCheckError, Settings, check, run_workload
from benchmarks.taskgraph import PlainGraph, dataflow_graph_shape, merge_tree
from benchmarks.workloads import get_workloads
from dataflow import Context
from dataflow.udf.sum import SumUDF

# one workload per kind: in-memory throughput (with the roofline), per-frame time,
# latency, a file read (with its base, "sum"), and a ROI run (a time against "sum")
KINDS = ["sum", "process-frame", "tiny-sum", "sum-zarr-zstd", "sum-roi"]
SUMMARY = ["median", "best", "median_s", "min_s"]


def _quick(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--repeat", "1", "--executors", "inline", "--json", str(out)]
    assert main([*argv, "--data-dir", str(tmp_path / "data"), *args]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_quick_run_writes_a_record_per_workload_with_the_peers(tmp_path, capsys):
    report = _quick(tmp_path, "--only", *KINDS)

    assert {"cpu_count", "python", "numpy", "dask", "zarr", "load_average"} <= set(
        report["machine"]
    )
    assert report["settings"]["peers"] == [
        "numpy",
        "dask",
        "distributed",
        "roofline",
        "decode_roofline",
    ]
    records = report["records"]
    assert [(r["workload"], r["executor"]) for r in records] == [(w, "inline") for w in KINDS]
    by_name = {r["workload"]: r for r in records}
    for r in records:
        assert all(r[k] > 0 and r[f"numpy_{k}"] > 0 and r[f"dask_{k}"] > 0 for k in SUMMARY), r
        assert r["ratio"] == r["ratio_numpy"] > 0
        assert r["ratio_dask"] > 0
        assert r["ratio_libertem"] is None  # no --peer libertem
        assert r["ratio_distributed"] is None  # not on a dask.distributed client
        assert r["vs_threads"] is None  # no threads executor in the run
        assert r["worker_threads"] is None
        assert len(r["times_s"]) == len(r["numpy_times_s"]) == len(r["dask_times_s"]) == 1
    assert {r["unit"] for r in records} == {"GiB/s", "µs/frame", "ms"}
    # the roofline: for memory-bound throughputs only
    assert by_name["sum"]["ratio_roofline"] > 0
    assert by_name["sum"]["roofline_executor"] in ("1 thread", "2 threads")
    assert by_name["tiny-sum"]["ratio_roofline"] is None
    # the decode roofline and the compression ratio: for compressed copies only
    zstd = by_name["sum-zarr-zstd"]
    assert zstd["ratio_decode_roofline"] > 0
    shape = (16, 16, 64, 64)  # the quick shape, float32: decoded bytes over stored bytes
    assert zstd["compression_ratio"] == pytest.approx(4 * np.prod(shape) / zstd["stored_bytes"])
    assert 1 < zstd["compression_ratio"] < 2  # uniform random floats barely compress
    assert by_name["sum"]["ratio_decode_roofline"] is None
    assert by_name["sum"]["compression_ratio"] is None
    # vs base: the file read against the in-memory run, the ROI run against the full one
    assert by_name["sum"]["vs_base"] is None
    assert by_name["sum-zarr-zstd"]["base"] == by_name["sum-roi"]["base"] == "sum"
    assert by_name["sum-zarr-zstd"]["vs_base"] > 0
    assert by_name["sum-roi"]["vs_base"] > 0
    assert by_name["sum-zarr-zstd"]["source"] == "zarr-zstd"

    series = report["series"]
    tools = {(x["workload"], x["tool"]) for x in series}
    assert {(w, t) for w in KINDS for t in ("numpy", "dask")} <= tools
    assert ("sum", "roofline") in tools
    assert ("tiny-sum", "roofline") not in tools
    roi_numpy = next(x for x in series if x["workload"] == "sum-roi" and x["tool"] == "numpy")
    assert roi_numpy["vs_base"] > 0
    assert report["skipped"] == []

    table = capsys.readouterr().out
    assert all(w in table for w in KINDS)
    assert "/libertem" in table
    assert "vs base" in table


def test_quick_data_is_cached_once_and_identical_for_every_form(tmp_path):
    cache = DataCache(tmp_path)
    (w,) = get_workloads(["tiny-sum"])
    data = w.setup(cache, quick=True)
    assert not data.flags.writeable
    assert w.setup(DataCache(tmp_path), quick=True).tobytes() == data.tobytes()
    zarr = pytest.importorskip("zarr")
    path = cache.path(SOURCES["zarr-zstd"], data.shape, data.dtype, 2)
    assert np.array_equal(zarr.open_array(str(path), mode="r")[...], data)
    roi = random_roi((16, 16), 0.1)
    assert roi.sum() == 26
    assert np.array_equal(np.load(cache.roi((16, 16), 0.1)), roi)


def test_uniform_floats_are_written_a_row_at_a_time_with_the_same_values(tmp_path):
    cache = DataCache(tmp_path)
    shape = (5, 3, 7, 9)  # odd rows: the generator's draws do not align with them
    written = np.load(cache.npy(shape, "float32"))
    assert np.array_equal(written, np.random.default_rng(0).random(shape, dtype=np.float32))
    mapped = cache.open(shape, "float32")
    assert isinstance(mapped, np.memmap)
    assert not mapped.flags.writeable
    assert np.array_equal(mapped, written)


# the workloads added for the targets: 4 GiB on a cluster, a plain distributed
# graph beside tiny-sum, a ROI read from disk


def _frames_sum(data: np.ndarray, roi: np.ndarray | None = None) -> np.ndarray:
    frames = data.reshape(-1, *data.shape[2:]).astype(np.float64)
    return (frames if roi is None else frames[roi.ravel()]).sum(axis=0)


@pytest.mark.parametrize("name", ["sum-npy-4g", "sum-zarr-4g", "sum-roi-npy", "sum-roi-zarr"])
def test_the_new_workloads_compute_numpys_sums_on_their_sources(tmp_path, name):
    pytest.importorskip("zarr")
    w = next(x for x in get_workloads([name]) if x.name == name)
    cache = DataCache(tmp_path)
    shape = w.shape_for(quick=True)
    source = SOURCES[w.source]
    path = cache.path(source, shape, w.dtype, w.sig_dims)
    data = w.setup(cache, quick=True)
    truth = np.load(cache.npy(shape, w.dtype))  # read here, not by the workload
    roi = None if w.roi_fraction is None else random_roi(shape[:2], w.roi_fraction)
    expected = _frames_sum(truth, roi)
    if name.endswith("-4g"):
        assert w.shape == (128, 128, 256, 256)  # float32: 4 GiB
        assert np.prod(w.shape) * 4 == 4 * 2**30
        assert shape == (32, 32, 64, 64)
        assert isinstance(data, np.memmap)  # not loaded: 4 GiB at full size
        assert w.executors == ("threads", "dask")
        assert w.libertem_udf is None
    else:
        assert w.base == f"sum-{w.source}"
        assert w.unit.name == "ms"
        assert roi is not None
        assert roi.sum() == 26
    assert np.allclose(w.run_reference(source.open_numpy(path, data)), expected, rtol=1e-5)
    assert np.allclose(w.expected(data), expected, rtol=1e-5)
    with Context.make_with("threads", cpus=2) as ctx:
        dataset = source.open_dataflow(ctx, path, data, w.sig_dims)
        assert np.allclose(w.run_dataflow(ctx, dataset), expected, rtol=1e-5)
    chunks = (4, *shape[1:])
    got = w.run_dask(source.open_dask(path, data, chunks)).compute(scheduler="sync")
    assert np.allclose(got, expected, rtol=1e-5)


def test_roi_reads_from_disk_are_reported_against_their_own_full_reads(tmp_path, capsys):
    pytest.importorskip("zarr")
    report = _quick(tmp_path, "--only", "sum-roi-npy", "sum-roi-zarr")
    records = {r["workload"]: r for r in report["records"]}
    # the bases are added, in registry order
    assert list(records) == ["sum-npy", "sum-zarr", "sum-roi-npy", "sum-roi-zarr"]
    for source in ("npy", "zarr"):
        roi, full = records[f"sum-roi-{source}"], records[f"sum-{source}"]
        assert (roi["source"], roi["base"], roi["unit"]) == (source, f"sum-{source}", "ms")
        # a time ratio, of the medians of the two runs on the same executor
        assert roi["vs_base"] == pytest.approx(roi["median_s"] / full["median_s"])
        assert roi["median"] == pytest.approx(roi["median_s"] * 1e3)
        numpy = {
            x["workload"]: x for x in report["series"] if x["tool"] == "numpy" and "median_s" in x
        }
        assert numpy[f"sum-roi-{source}"]["vs_base"] == pytest.approx(
            numpy[f"sum-roi-{source}"]["median_s"] / numpy[f"sum-{source}"]["median_s"]
        )
    assert "sum-roi-zarr" in capsys.readouterr().out


def test_the_plain_graph_mirrors_dataflows_graph_key_for_key():
    from dask.core import get_dependencies

    from dataflow.graph import build_graph
    from dataflow.run import plan_run

    data = np.random.default_rng(2).random((20, 4, 8, 8), dtype=np.float32)
    with Context.make_with("inline") as ctx:
        dataset = ctx.load("memory", data=data, sig_dims=2, num_partitions=20)
        shape = dataflow_graph_shape(ctx, dataset, SumUDF())
        plan = plan_run(dataset, [SumUDF()], executor=ctx.executor)
        theirs = build_graph(
            plan, split_every=ctx.split_every, data=ctx.executor.input_array(dataset)
        ).to_dict()
    # 20 partitions, split_every 8: one merge level of 8, 8 and 4, then the finishing task
    assert len(shape.partitions) == 20
    assert shape.split_every == 8
    assert shape.merge_nodes == 3
    assert [[len(g) for g in level] for level in merge_tree(20, 8)] == [[8, 8, 4]]
    assert shape.tasks == 20 + 3 + 1
    assert shape.data_keys == 20
    assert shape.keys == len(theirs) == 1 + 20 + 24  # the spec, the blocks, the tasks
    frames = data.reshape(-1, 8, 8)
    plain = PlainGraph(shape, [frames[a:b] for a, b in shape.partitions], lambda f: f.sum(0))
    mine, final = plain.graph()
    assert len(mine) == shape.keys

    # the same edges: as many keys with each number of dependencies
    def degrees(dsk):
        return sorted(len(get_dependencies(dsk, k)) for k in dsk)

    assert degrees(mine) == degrees(theirs)
    assert np.allclose(dask.get(mine, final), data.sum(axis=(0, 1), dtype=np.float64))
    assert plain.graph()[1] != final  # fresh names for every run


def test_a_graph_with_more_than_the_tree_is_not_mirrored():
    from dataflow.udf.sumsigudf import SumSigUDF

    data = np.random.default_rng(2).random((4, 4, 8, 8), dtype=np.float32)
    with Context.make_with("inline") as ctx:
        dataset = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
        # a nav result: its slices move to the finishing task in a layer of their own
        with pytest.raises(ValueError, match="the plain graph mirrors only those"):
            dataflow_graph_shape(ctx, dataset, SumSigUDF())


def test_new_data_is_skipped_without_the_disk_space_for_it(tmp_path, monkeypatch):
    free = type("U", (), {"free": 2**29})()
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda path: free)
    report = _quick(tmp_path, "--only", "sum-npy-4g", "--executors", "threads")
    assert report["records"] == []
    (skip,) = report["skipped"]
    assert skip["workload"] == "sum-npy-4g"
    # quick shape: 16 MiB of .npy, and the margin of 1 GiB
    assert "0.5 GiB free" in skip["reason"]
    assert "needs 1.0 GiB" in skip["reason"]
    assert "float32-32x32x64x64-seed0.npy" in skip["reason"]
    assert not list((tmp_path / "data").glob("*.npy"))  # nothing was written


@pytest.fixture(scope="module")
def cluster_report(tmp_path_factory) -> tuple[dict, str]:
    """One quick run of the cluster workloads and tiny-sum on threads and a 2-worker cluster."""
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    tmp_path = tmp_path_factory.mktemp("cluster")
    out = tmp_path / "bench.json"
    argv = ["--quick", "--repeat", "2", "--executors", "inline", "threads", "dask"]
    argv += ["--json", str(out), "--data-dir", str(tmp_path / "data")]
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        assert main([*argv, "--only", "tiny-sum", "sum-npy-4g", "sum-zarr-4g"]) == 0
    return json.loads(out.read_text(encoding="utf-8")), table.getvalue()


@pytest.mark.distributed
def test_cluster_workloads_compare_dask_with_threads(cluster_report):
    report, table = cluster_report
    for name in ("sum-npy-4g", "sum-zarr-4g"):
        records = {r["executor"]: r for r in report["records"] if r["workload"] == name}
        assert list(records) == ["threads", "dask"]  # inline is not run
        threads, cluster = records["threads"], records["dask"]
        assert cluster["shape"] == [32, 32, 64, 64]
        assert cluster["nbytes"] == 32 * 32 * 64 * 64 * 4
        # GiB/s over GiB/s, of the medians of the same run
        assert cluster["vs_threads"] == pytest.approx(cluster["median"] / threads["median"])
        assert cluster["vs_threads"] == pytest.approx(threads["median_s"] / cluster["median_s"])
        assert threads["vs_threads"] is None
        assert cluster["worker_threads"] == [1, 1]  # 2 single-threaded workers
        assert threads["worker_threads"] is None
        assert cluster["ratio_libertem"] is None
        assert cluster["ratio_numpy"] > 0
        assert cluster["ratio_dask"] > 0
        assert {"workload": name, "reason": "executor 'inline': runs only on threads, dask"} in (
            report["skipped"]
        )
    assert "vs threads" in table
    assert "sum-zarr-4g" in table


@pytest.mark.distributed
def test_tiny_sum_on_dask_is_compared_with_a_plain_distributed_graph(cluster_report):
    report, table = cluster_report
    records = {r["executor"]: r for r in report["records"] if r["workload"] == "tiny-sum"}
    cluster = records["dask"]
    (plain,) = [
        x for x in report["series"] if x["workload"] == "tiny-sum" and x["tool"] == "distributed"
    ]
    assert plain["against"] == "dask"
    assert plain["executor"] == "client of 'dask' (2 workers)"
    # 1 MiB on 2 workers: 2 partitions, merged by the finishing task (no merge node)
    assert plain["partitions"] == cluster["partitions"] == 2
    assert plain["merge_nodes"] == 0
    assert plain["tasks"] == cluster["distributed_tasks"] == 3
    assert plain["keys"] == cluster["distributed_keys"] == 1 + 2 + 3
    assert len(plain["times_s"]) == 2
    assert cluster["distributed_median"] == pytest.approx(plain["median"])
    assert cluster["ratio_distributed"] == pytest.approx(cluster["median"] / plain["median"])
    assert cluster["ratio_distributed"] == pytest.approx(cluster["median_s"] / plain["median_s"])
    # only the dask row is compared with the graph run on its client
    assert records["inline"]["ratio_distributed"] is None
    assert records["threads"]["ratio_distributed"] is None
    assert cluster["ratio_dask"] > 0  # the dask.array peer stays
    assert records["inline"]["vs_threads"] == pytest.approx(
        records["inline"]["median"] / records["threads"]["median"]
    )
    assert "/distributed" in table


def test_check_raises_on_a_wrong_reference():
    data = np.random.default_rng(1).random((4, 4, 8, 8), dtype=np.float32)
    got = data.sum(axis=(0, 1))
    check(got, data.sum(axis=(0, 1), dtype=np.float64), what="sum")  # within rtol
    with pytest.raises(BenchmarkCheckError, match=r"sum: the result differs .* rtol=1e-05"):
        check(got, got * 1.001, what="sum")
    with pytest.raises(BenchmarkCheckError, match=r"has shape \(8, 8\); .* shape \(4, 4\)"):
        check(got, data.sum(axis=(2, 3)), what="sum")


def test_a_wrong_reference_stops_the_workload(tmp_path):
    (w,) = get_workloads(["tiny-sum"])
    wrong = dataclasses.replace(w, run_reference=lambda data: data.sum(axis=(0, 1)) + 1)
    with pytest.raises(BenchmarkCheckError, match="tiny-sum on executor 'inline'"):
        run_workload(
            wrong, ["inline"], quick=True, repeat=1, log=lambda msg: None, cache=DataCache(tmp_path)
        )


def test_unknown_workload_is_rejected():
    with pytest.raises(ValueError, match=r"unknown workloads.*known workloads: sum"):
        get_workloads(["nope"])


def test_workload_selection_adds_bases_and_keeps_the_memory_run_opt_in():
    names = [w.name for w in get_workloads(None)]
    assert "memory" not in names
    assert names[0] == "sum"
    assert "memory" in [w.name for w in get_workloads(None, big=True)]
    assert [w.name for w in get_workloads(["sum-roi"])] == ["sum", "sum-roi"]
    assert [w.name for w in get_workloads(["memory"])] == ["memory"]


# the LiberTEM peer, faked --------------------------------------------------------------------

_FAKE_PEER = """\
import json, sys
from pathlib import Path
import numpy as np

MARKER = "BENCHMARK-PEER-RESULT "
MODE = {mode!r}
script, *args = sys.argv[1:]
with open(Path(__file__).with_name("calls.jsonl"), "a") as f:
    f.write(json.dumps([script, *args]) + "\\n")
if "--version" in args:
    print(MARKER + json.dumps({{"libertem": "0.16.0", "numpy": np.__version__, "zarr": "3"}}))
    sys.exit(0)
if MODE == "garbage":
    print("Traceback: something went wrong")
    sys.exit(0)
spec = json.loads(Path(args[args.index("--jobs") + 1]).read_text())
Path(__file__).with_name("jobs.json").write_text(json.dumps(spec))  # for the test to read
results = []
for i, job in enumerate(spec["jobs"]):
    data = np.load(job["data"])
    frames = data.reshape(-1, *data.shape[2:])
    if job["roi"] is not None:
        frames = frames[np.load(job["roi"]).ravel()]
    for ex in job["executors"]:
        record = {{"workload": job["workload"], "executor": ex, "partitions": 1}}
        if MODE == "error":
            record.update(times_s=[], result=None, error="RuntimeError: no")
        else:
            out = Path(spec["result_dir"]) / f"{{i}}-{{ex}}.npy"
            factor = 2 if MODE == "wrong" else 1
            np.save(out, frames.sum(axis=0) * factor)
            record.update(times_s=[0.004] * job["repeat"], result=str(out), error=None)
        results.append(record)
print("noise that LiberTEM printed")
print(MARKER + json.dumps({{"libertem": "0.16.0", "numpy": np.__version__, "results": results}}))
"""


def _fake_peer(tmp_path: Path, mode: str = "ok") -> Path:
    python = tmp_path / "fake-peer" / "python"
    python.parent.mkdir()
    python.write_text(f"#!{sys.executable}\n" + _FAKE_PEER.format(mode=mode), encoding="utf-8")
    python.chmod(0o755)
    return python


def _calls(python: Path) -> list[list[str]]:
    lines = python.with_name("calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_libertem_peer_gets_one_batch_of_jobs_and_its_results_are_checked(tmp_path, capsys):
    python = _fake_peer(tmp_path)
    peer_args = ["--peer", "libertem", "--peer-python", str(python)]
    report = _quick(tmp_path, "--only", "tiny-sum", "sum-roi", "--executors", "inline", *peer_args)

    version, run = _calls(python)
    assert Path(version[0]).name == Path(run[0]).name == "peer_libertem.py"
    assert version[1:] == ["--version"]
    assert run[1] == "--jobs"
    assert Path(run[2]).name == "jobs.json"
    seen = python.with_name("jobs.json")  # the fake's copy: the runner's is deleted by now
    spec = json.loads(seen.read_text(encoding="utf-8"))
    assert spec["cpus"] == 2
    jobs = {j["workload"]: j for j in spec["jobs"]}
    assert list(jobs) == ["sum", "tiny-sum", "sum-roi"]  # registry order; "sum" is the base
    assert jobs["tiny-sum"] == {
        "workload": "tiny-sum",
        "udf": "sum",
        "source": "memory",
        "data": jobs["tiny-sum"]["data"],
        "shape": [16, 16, 32, 32],
        "dtype": "float32",
        "sig_dims": 2,
        "executors": ["inline"],
        "repeat": 1,
        "roi": None,
    }
    assert Path(jobs["tiny-sum"]["data"]).name == "float32-16x16x32x32-seed0.npy"
    assert np.load(jobs["sum-roi"]["roi"]).sum() == 26
    # the jobs as the peer script reads them
    checked, settings = peer_libertem.jobs_from_file(seen)
    assert [j["workload"] for j in checked] == list(jobs)
    assert settings["cpus"] == 2

    assert report["peer"]["libertem"] == "0.16.0"
    assert report["settings"]["peers"][-1] == "libertem"
    for r in report["records"]:
        assert r["libertem_executor"] == "inline"
        assert r["libertem_median_s"] == pytest.approx(0.004)
        assert r["ratio_libertem"] == pytest.approx(r["median"] / r["libertem_median"])
    roi = next(
        x for x in report["series"] if x["workload"] == "sum-roi" and x["tool"] == "libertem"
    )
    assert roi["vs_base"] == pytest.approx(1.0)  # the fake takes 4 ms for either
    out = capsys.readouterr().out
    assert "dataflow/LiberTEM" in out


def test_a_wrong_libertem_result_stops_the_run(tmp_path):
    python = _fake_peer(tmp_path, mode="wrong")
    with pytest.raises(BenchmarkCheckError, match="tiny-sum on LiberTEM executor 'inline'"):
        _quick(tmp_path, "--only", "tiny-sum", "--peer", "libertem", "--peer-python", str(python))


def test_a_failed_libertem_job_is_reported_and_the_run_goes_on(tmp_path, capsys):
    python = _fake_peer(tmp_path, mode="error")
    report = _quick(
        tmp_path, "--only", "tiny-sum", "--peer", "libertem", "--peer-python", str(python)
    )
    (r,) = report["records"]
    assert r["ratio_libertem"] is None
    assert r["ratio_numpy"] > 0
    assert r["peer_errors"] == {"libertem inline": "RuntimeError: no"}
    assert "RuntimeError: no" in capsys.readouterr().out


def test_a_peer_without_a_result_line_is_an_error(tmp_path, capsys):
    python = _fake_peer(tmp_path, mode="garbage")
    with pytest.raises(SystemExit) as exc:
        _quick(tmp_path, "--only", "tiny-sum", "--peer", "libertem", "--peer-python", str(python))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no line starting with 'BENCHMARK-PEER-RESULT'" in err
    assert "Traceback: something went wrong" in err  # what the peer printed instead


def test_a_missing_peer_python_exits_with_a_message(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "python"
    with pytest.raises(SystemExit) as exc:
        main(["--quick", "--only", "tiny-sum", "--peer", "libertem", "--peer-python", str(missing)])
    assert exc.value.code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stdout", "match"),
    [
        ("", "no line starting with"),
        ("BENCHMARK-PEER-RESULT {not json", "not JSON"),
        ('BENCHMARK-PEER-RESULT {"numpy": "2"}', "no 'libertem' version"),
        (
            'BENCHMARK-PEER-RESULT {"libertem": "0.16.0", "results": [{"workload": "sum"}]}',
            "lacks",
        ),
        (
            (
                'BENCHMARK-PEER-RESULT {"libertem": "0.16.0", "results": [{"workload": "sum", '
                '"executor": "inline", "times_s": [], "result": null, "error": null}]}'
            ),
            "bad times_s",
        ),
    ],
)
def test_parse_output_rejects_malformed_reports(stdout, match):
    with pytest.raises(PeerError, match=match):
        parse_output(stdout)


def test_parse_output_takes_the_marked_line():
    report = parse_output(
        'numba says hi\nBENCHMARK-PEER-RESULT {"libertem": "0.16.0", "results": []}\nbye\n'
    )
    assert report == {"libertem": "0.16.0", "results": []}


# the peer script's arguments (run in this environment: libertem is imported only to run)


def test_peer_script_builds_one_job_from_its_arguments(tmp_path):
    mode, jobs, settings = peer_libertem.parse_args(
        [
            "--workload",
            "sum-raw",
            "--udf",
            "sum",
            "--source",
            "raw",
            "--data",
            str(tmp_path / "x.raw"),
            "--shape",
            "4",
            "4",
            "8",
            "8",
            "--dtype",
            "uint16",
            "--executors",
            "inline",
            "threads",
            "--repeat",
            "2",
            "--result-dir",
            str(tmp_path),
        ]
    )
    assert mode == "run"
    assert settings == {"cpus": 2, "result_dir": str(tmp_path)}
    assert jobs == [
        {
            "workload": "sum-raw",
            "udf": "sum",
            "source": "raw",
            "data": str(tmp_path / "x.raw"),
            "shape": [4, 4, 8, 8],
            "dtype": "uint16",
            "sig_dims": 2,
            "executors": ["inline", "threads"],
            "repeat": 2,
            "roi": None,
        }
    ]
    assert peer_libertem.parse_args(["--version"]) == ("version", [], {})


_JOB = ["--workload", "s", "--udf", "sum", "--data", "x"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--udf", "nope"], "invalid choice: 'nope'"),
        (["--repeat", "0"], "'0' is not a positive integer"),
        (["--executors", "pipelined"], "invalid choice: 'pipelined'"),
        ([*_JOB, "--shape", "4", "--result-dir", "r"], r"sig_dims is 2 for shape \[4\]"),
        ([*_JOB[:4], "--shape", "4", "4", "8", "8", "--result-dir", "r"], r"lacks \['data'\]"),
        ([*_JOB, "--shape", "4", "4", "8", "8"], "--result-dir is missing"),
        ([*_JOB, "--shape", "4", "4", "8", "8", "--jobs", "j.json"], "either --jobs or"),
    ],
)
def test_peer_script_rejects_bad_arguments(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        peer_libertem.parse_args(argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_peer_script_rejects_a_bad_jobs_file(tmp_path, capsys):
    spec = tmp_path / "jobs.json"
    spec.write_text(
        json.dumps(
            {
                "result_dir": str(tmp_path),
                "jobs": [
                    {
                        "workload": "s",
                        "udf": "sum",
                        "data": "x",
                        "shape": [4, 4, 8, 8],
                        "tileshape": [1],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit):
        peer_libertem.parse_args(["--jobs", str(spec)])
    assert "job 0 has unknown keys ['tileshape']" in capsys.readouterr().err


def test_peer_script_without_libertem_fails_cleanly(tmp_path):
    # this environment has no LiberTEM: the script must say so, not fail on import
    done = subprocess.run(
        [sys.executable, str(Path(peer_libertem.__file__)), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        pytest.skip("libertem is installed in this environment")
    assert "No module named 'libertem'" in done.stderr


def test_the_peer_venv_is_made_with_libertem_only_when_missing(tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, check=False):
        calls.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:
            python = Path(cmd[3]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.touch()
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr("benchmarks.peer.subprocess.run", fake_run)
    venv = tmp_path / "lt-venv"
    python = ensure_venv(venv, log=lambda msg: None)
    assert python == venv / "bin" / "python"
    assert calls[0][1:] == ["-m", "venv", str(venv)]
    assert calls[-1][:4] == [str(python), "-m", "pip", "install"]
    assert f"libertem=={LIBERTEM_VERSION}" in calls[-1]
    calls.clear()
    assert ensure_venv(venv, log=lambda msg: None) == python
    assert calls == []  # it exists: nothing is run


def test_a_failing_peer_venv_creation_names_the_step(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "benchmarks.peer.subprocess.run",
        lambda cmd, check=False: subprocess.CompletedProcess(cmd, 1),
    )
    with pytest.raises(PeerError, match=r"-m venv .* failed with exit status 1.*--peer-python"):
        ensure_venv(tmp_path / "lt-venv", log=lambda msg: None)


# the memory workload, on small stores ------------------------------------------------------


def _settings(tmp_path: Path, **kwargs) -> Settings:
    return Settings(executors=["inline"], cache=DataCache(tmp_path), log=lambda msg: None, **kwargs)


@pytest.mark.slow  # two subprocesses, each importing dataflow and zarr
def test_memory_workload_measures_peak_rss_of_both_stores(tmp_path, monkeypatch):
    pytest.importorskip("zarr")
    monkeypatch.setattr(memory, "BIG_SHAPE", (8, 4, 16, 16))
    monkeypatch.setattr(memory, "SMALL_SHAPE", (2, 4, 16, 16))
    (w,) = get_workloads(["memory"])
    settings = _settings(tmp_path)
    (r,) = memory.run_memory(settings, w)
    assert (r["workload"], r["executor"], r["unit"]) == ("memory", "inline", "MiB")
    assert r["peak_rss_mib"] > 0
    assert r["peak_rss_1gib_mib"] > 0
    assert r["vs_base"] == pytest.approx(r["peak_rss_mib"] / r["peak_rss_1gib_mib"])
    assert r["probe_8gib"]["baseline_mib"] > 0
    assert settings.skipped == []
    # the big store and its exact sum are kept for the next run
    assert len(list(tmp_path.glob("float32-8x4x16x16-seed0-zstd.zarr*"))) == 2


def test_memory_workload_skips_in_quick_mode_and_without_disk_space(tmp_path, monkeypatch):
    (w,) = get_workloads(["memory"])
    settings = _settings(tmp_path, quick=True)
    assert memory.run_memory(settings, w) == []
    assert "full mode only" in settings.skipped[0]["reason"]

    settings = _settings(tmp_path)
    monkeypatch.setattr(memory.shutil, "disk_usage", lambda path: type("U", (), {"free": 2**30})())
    assert memory.run_memory(settings, w) == []
    assert "1.0 GiB free" in settings.skipped[0]["reason"]
