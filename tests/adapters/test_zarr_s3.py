"""The ``zarr`` adapter on S3: a moto server on 127.0.0.1, read through s3fs.

The server is started by the ``s3`` fixture on a free loopback port and stopped after
the module; nothing here reaches the network. Besides results, these tests check that
credentials passed in ``storage_options`` stay out of reprs, messages, logs and the
pickled dask graph.
"""

from __future__ import annotations

import logging
import traceback
import uuid

import cloudpickle
import numpy as np
import pytest

import dataflow
from dataflow.adapters.zarr import ZarrReadError
from dataflow.adapters.zarr import credentials as zarr_credentials
from dataflow.errors import DataSetException
from dataflow.graph import build_graph
from dataflow.plan import make_plan
from dataflow.testing import FrameCopyUDF
from dataflow.udf.sum import SumUDF
from dataflow.udf.sumsigudf import SumSigUDF

KEY = "AKIDDATAFLOWTEST"
SECRET = "s3cr3t-dataflow-d0-not-leak"
SHAPE = (6, 7, 8, 9)


@pytest.fixture(scope="module")
def s3():
    """``(endpoint_url, bucket)`` of a moto S3 server on loopback, stopped afterwards."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    mp = pytest.MonkeyPatch()
    mp.setenv("NO_PROXY", "127.0.0.1")
    mp.setenv("no_proxy", "127.0.0.1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        mp.delenv(name, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = "dataflow-test"
        import s3fs

        s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=endpoint).mkdir(bucket)
        yield endpoint, bucket
    finally:
        server.stop()
        mp.undo()


@pytest.fixture
def options(s3):
    endpoint, _ = s3
    return {"key": KEY, "secret": SECRET, "endpoint_url": endpoint}


@pytest.fixture
def url(s3):
    """A fresh URL in the bucket for each test."""
    _, bucket = s3
    return f"s3://{bucket}/{uuid.uuid4().hex}.zarr"


@pytest.fixture(scope="module")
def ctx():
    with dataflow.Context.make_with("inline") as c:
        yield c


def _data(shape=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(0, 1000, size=shape).astype("uint16")


def _write(url, options, data, chunks, zarr_format=3, ds_path=""):
    import zarr

    store = zarr.storage.FsspecStore.from_url(url, storage_options=options)
    if ds_path:
        group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
        group.create_array("other", shape=(3,), dtype="i4")
        arr = group.create_array(ds_path, shape=data.shape, chunks=chunks, dtype=data.dtype)
    else:
        arr = zarr.create_array(
            store, shape=data.shape, chunks=chunks, dtype=data.dtype, zarr_format=zarr_format
        )
    arr[...] = data


def _no_secrets(blob):
    text = blob if isinstance(blob, bytes) else str(blob).encode()
    assert SECRET.encode() not in text
    assert KEY.encode() not in text


# results ----------------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("ds_path", ["", "frames"])
def test_same_results_as_memory(ctx, url, options, zarr_format, ds_path):
    data = _data()
    _write(url, options, data, (2, 7, 4, 9), zarr_format, ds_path)
    ds = ctx.load(
        "zarr", path=url, ds_path=ds_path or None, storage_options=options, num_partitions=3
    )
    mem = ctx.load("memory", data=data, num_partitions=3)
    assert tuple(ds.shape) == SHAPE
    assert [(p.start, p.stop) for p in ds.partitions] == [(0, 14), (14, 28), (28, 42)]
    udfs = [SumUDF(), SumSigUDF(), FrameCopyUDF()]
    for got, want in zip(
        ctx.run_udf(dataset=ds, udf=udfs), ctx.run_udf(dataset=mem, udf=udfs), strict=True
    ):
        for name in want:
            np.testing.assert_array_equal(got[name].data, want[name].data)
    roi = np.zeros(SHAPE[:2], bool)
    roi[0, 1] = roi[3, 3] = roi[5, 6] = True
    got = ctx.run_udf(dataset=ds, udf=FrameCopyUDF(), roi=roi)
    np.testing.assert_array_equal(got["frames"].raw_data, data[roi])


def test_missing_store(ctx, url, options):
    with pytest.raises(FileNotFoundError, match="no zarr array or group") as info:
        ctx.load("zarr", path=url, storage_options=options)
    _no_secrets("".join(traceback.format_exception(info.value)))


# credentials ---------------------------------------------------------------------------------


def test_secrets_not_in_reprs_or_graphs(ctx, url, options):
    data = _data()
    _write(url, options, data, (2, 7, 8, 9), ds_path="frames")
    ds = ctx.load("zarr", path=url, ds_path="frames", storage_options=options, num_partitions=3)
    _no_secrets(repr(ds))
    _no_secrets(repr(ds.reader))
    _no_secrets(repr(ds.attrs))
    _no_secrets(cloudpickle.dumps(dict(ds.partition_array.__dask_graph__())))
    _no_secrets(cloudpickle.dumps(ds.reader))
    _no_secrets(ds.partition_array.name)
    roi = np.zeros(SHAPE[:2], bool)
    roi[2, 2] = True
    graph = build_graph(make_plan(ds, [SumUDF()], roi=roi))  # reads through ds.reader
    _no_secrets(cloudpickle.dumps(dict(graph.graph)))
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    np.testing.assert_array_equal(res["intensity"].data, data[2, 2])


def test_secrets_not_in_errors(ctx, url, options):
    _write(url, options, _data(), (2, 7, 8, 9), ds_path="frames")
    with pytest.raises(DataSetException, match="no such member") as info:
        ctx.load("zarr", path=url, ds_path="nope", storage_options=options)
    assert "'frames', 'other'" in str(info.value)
    _no_secrets("".join(traceback.format_exception(info.value)))
    with pytest.raises(DataSetException, match="pass ds_path=") as info:
        ctx.load("zarr", path=url, storage_options=options)
    _no_secrets("".join(traceback.format_exception(info.value)))


def test_secrets_not_in_logs(ctx, url, options, caplog):
    data = _data()
    with caplog.at_level(logging.DEBUG):
        _write(url, options, data, (2, 7, 8, 9))
        ds = ctx.load("zarr", path=url, storage_options=options, num_partitions=2)
        ctx.run_udf(dataset=ds, udf=SumUDF())
    assert caplog.records  # s3fs and botocore did log
    assert SECRET not in caplog.text


def test_worker_without_credentials(ctx, url, options, monkeypatch):
    """A process that did not load the dataset has none of its private options."""
    _write(url, options, _data(), (2, 7, 8, 9))
    ds = ctx.load("zarr", path=url, storage_options=options, num_partitions=2)
    monkeypatch.setattr(zarr_credentials, "_PRIVATE_OPTIONS", {})
    with pytest.raises(ZarrReadError, match="credentials_in_graph=True") as info:
        ds.reader(0, 4, None)
    assert "'key', 'secret'" in str(info.value)
    _no_secrets(str(info.value))


def test_worker_with_its_own_credentials(ctx, s3, url, options, monkeypatch):
    """Options without credentials travel in the graph; the worker brings its own."""
    data = _data()
    _write(url, options, data, (2, 7, 8, 9))
    public = {"endpoint_url": s3[0]}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    ds = ctx.load("zarr", path=url, storage_options=public, num_partitions=2)
    assert ds.reader.source.private_ref is None
    monkeypatch.setattr(zarr_credentials, "_PRIVATE_OPTIONS", {})
    np.testing.assert_array_equal(ds.reader(0, 42, None), data.reshape(42, 8, 9))


def test_credentials_in_graph(ctx, url, options, monkeypatch):
    data = _data()
    _write(url, options, data, (2, 7, 8, 9))
    ds = ctx.load(
        "zarr", path=url, storage_options=options, credentials_in_graph=True, num_partitions=2
    )
    _no_secrets(repr(ds))
    _no_secrets(repr(ds.reader))
    assert SECRET.encode() in cloudpickle.dumps(ds.reader)  # as asked
    monkeypatch.setattr(zarr_credentials, "_PRIVATE_OPTIONS", {})
    np.testing.assert_array_equal(ds.reader(0, 42, None), data.reshape(42, 8, 9))


def test_processes(processes_ctx, url, options):
    """Worker processes read with credentials only if they were sent with the graph."""
    data = _data()
    _write(url, options, data, (2, 7, 8, 9))
    ds = processes_ctx.load("zarr", path=url, storage_options=options, num_partitions=3)
    with pytest.raises(ZarrReadError, match="credentials_in_graph") as info:
        processes_ctx.run_udf(dataset=ds, udf=SumUDF())
    _no_secrets(str(info.value))
    ds = processes_ctx.load(
        "zarr", path=url, storage_options=options, credentials_in_graph=True, num_partitions=3
    )
    res = processes_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype="f4"))
