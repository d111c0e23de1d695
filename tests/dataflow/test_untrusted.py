"""Untrusted data: nothing from a data source is unpickled unless ``allow_pickle=True``,
and credentials in ``storage_options`` never reach reprs, errors, logs or a cluster.

The hostile files here carry a pickle whose loading creates a marker directory
(``__reduce__`` returns ``os.makedirs``). Each test checks first that the payload is live
(unpickling it does create the marker), then that opening and running the source
without ``allow_pickle`` leaves no marker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import traceback
import uuid
import warnings

import cloudpickle
import numpy as np
import pytest

from dataflow.adapters.zarr import ZarrReadError
from dataflow.api import Context
from dataflow.errors import DataSetException
from dataflow.executor.dask import DaskJobExecutor
from dataflow.executor.inline import InlineJobExecutor
from dataflow.udf.sum import SumUDF

KEY = "AKIDDATAFLOWUNTRUSTED"
SECRET = "s3cr3t-untrusted-d0-not-leak"


class Hostile:
    """Unpickling an instance runs ``os.makedirs(marker, exist_ok=True)``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker, 0o777, True))


@pytest.fixture
def ctx():
    return Context(executor=InlineJobExecutor())


@pytest.fixture
def marker(tmp_path):
    """Where the hostile payloads leave a directory when they run."""
    return tmp_path / "code-ran"


def _live(payload, marker):
    """Check that unpickling ``payload`` does run code; leave no marker behind."""
    assert not marker.exists()
    pickle.loads(payload)
    assert marker.is_dir(), "the hostile payload did not run: the test proves nothing"
    marker.rmdir()


# npy ------------------------------------------------------------------------------------------


def _hostile_npy(path, marker, structured=False):
    values = np.empty((2, 3, 2, 2), dtype=[("x", "f4"), ("o", "O")] if structured else object)
    for index in np.ndindex(values.shape):
        if structured:
            values[index] = (1.0, Hostile(marker))
        else:
            values[index] = Hostile(marker)
    np.save(path, values, allow_pickle=True)
    return path


@pytest.mark.parametrize("structured", [False, True], ids=["object", "structured-object-field"])
@pytest.mark.parametrize("filetype", ["npy", "auto"])
def test_npy_object_arrays_are_not_unpickled(ctx, tmp_path, marker, structured, filetype):
    path = _hostile_npy(tmp_path / "hostile.npy", marker, structured)
    _live(pickle.dumps(Hostile(marker)), marker)
    with pytest.raises(DataSetException, match="allow_pickle=True") as info:
        ctx.load(filetype, path=path)
    assert "Python objects, pickled" in str(info.value)
    assert not marker.exists()


def test_npy_unpickles_only_when_allowed_and_only_when_read(ctx, tmp_path, marker):
    path = _hostile_npy(tmp_path / "hostile.npy", marker)
    ds = ctx.load("npy", path=path, allow_pickle=True)
    assert ds.dtype == object
    assert not marker.exists()  # opening read the header only
    ds.partition_array.compute(scheduler="sync")  # the trusted read unpickles
    assert marker.is_dir()
    marker.rmdir()


def test_npy_graph_holds_no_pickled_data(ctx, tmp_path, marker):
    """An allowed object npy: the graph names the file, it never carries the objects."""
    path = _hostile_npy(tmp_path / "hostile.npy", marker)
    ds = ctx.load("npy", path=path, allow_pickle=True)
    blob = cloudpickle.dumps(dict(ds.partition_array.__dask_graph__()))
    assert b"makedirs" not in blob
    assert not marker.exists()


# zarr -----------------------------------------------------------------------------------------


def _zarr2(root, dtype, payload, *, filters=None, compressor=None, fill_value=0):
    """A zarr format 2 array of shape (2, 3, 2, 2), one chunk holding ``payload``."""
    root.mkdir()
    meta = {
        "zarr_format": 2,
        "shape": [2, 3, 2, 2],
        "chunks": [2, 3, 2, 2],
        "dtype": dtype,
        "compressor": compressor,
        "fill_value": fill_value,
        "filters": filters,
        "order": "C",
        "dimension_separator": ".",
    }
    (root / ".zarray").write_text(json.dumps(meta))
    (root / "0.0.0.0").write_bytes(payload)
    return root


def _zarr3(root, payload):
    """A zarr format 3 float32 array whose codecs start with numcodecs' pickle."""
    root.mkdir()
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [2, 3, 2, 2],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 3, 2, 2]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [
            {"name": "numcodecs.pickle", "configuration": {"protocol": 5}},
            {"name": "bytes", "configuration": {"endian": "little"}},
        ],
        "attributes": {},
    }
    (root / "zarr.json").write_text(json.dumps(meta))
    (root / "c/0/0/0").mkdir(parents=True)
    (root / "c/0/0/0/0").write_bytes(payload)
    return root


_PICKLE = {"id": "pickle", "protocol": 5}

HOSTILE_STORES = [
    pytest.param(
        lambda root, p: _zarr2(root, "|O", p, filters=[_PICKLE]), id="v2-object-pickle-codec"
    ),
    pytest.param(lambda root, p: _zarr2(root, "<f4", p, filters=[_PICKLE]), id="v2-pickle-filter"),
    pytest.param(
        lambda root, p: _zarr2(root, "<f4", p, compressor=_PICKLE), id="v2-pickle-compressor"
    ),
    pytest.param(
        lambda root, p: _zarr2(
            root, "|O", p, filters=[_PICKLE], fill_value=base64.b64encode(p).decode()
        ),
        id="v2-pickled-fill-value",
    ),
    pytest.param(_zarr3, id="v3-pickle-codec"),
]


@pytest.mark.parametrize("write", HOSTILE_STORES)
def test_zarr_pickle_codecs_are_never_run(ctx, tmp_path, marker, write):
    payload = pickle.dumps(Hostile(marker))
    _live(payload, marker)
    root = write(tmp_path / "hostile.zarr", payload)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: codecs without a stable v3 spec
        with pytest.raises(DataSetException, match=r"hostile\.zarr"):
            ctx.load("zarr", path=root)
        assert not marker.exists()
        with pytest.raises(DataSetException, match=r"hostile\.zarr"):
            ctx.load("zarr", path=root, allow_pickle=True)  # zarr itself refuses pickle codecs
    assert not marker.exists()


def test_zarr_object_dtype_needs_allow_pickle(ctx, tmp_path):
    import zarr

    values = np.array([b"a", b"bb"] * 12, dtype=object).reshape(2, 3, 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr: the bytes data type has no stable v3 spec
        z = zarr.create_array(str(tmp_path / "o.zarr"), shape=values.shape, dtype="bytes")
        z[...] = values
    with pytest.raises(DataSetException, match="has dtype object") as info:
        ctx.load("zarr", path=tmp_path / "o.zarr")
    assert "pass allow_pickle=True to load it, for stores you trust only" in str(info.value)


# credentials on a cluster -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3():
    """``(endpoint_url, bucket)`` of a moto S3 server on loopback, stopped afterwards."""
    import moto.server as server_module
    import s3fs

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
        import s3fs

        s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=endpoint).mkdir("untrusted")
        yield endpoint, "untrusted"
    finally:
        server.stop()
        mp.undo()


def _no_secrets(blob):
    text = blob if isinstance(blob, bytes) else str(blob).encode()
    assert SECRET.encode() not in text
    assert KEY.encode() not in text


@pytest.mark.distributed
def test_credentials_stay_on_the_client(s3, monkeypatch):
    """Options holding credentials never reach the scheduler, the workers or their logs."""
    import distributed
    import zarr

    endpoint, bucket = s3
    url = f"s3://{bucket}/{uuid.uuid4().hex}.zarr"
    options = {"key": KEY, "secret": SECRET, "endpoint_url": endpoint}
    data = np.random.default_rng(0).integers(0, 1000, size=(6, 7, 8, 9)).astype("uint16")
    store = zarr.storage.FsspecStore.from_url(url, storage_options=options)
    zarr.create_array(store, shape=data.shape, chunks=(2, 7, 8, 9), dtype=data.dtype)[...] = data

    specs = []

    class GraphRecorder(distributed.diagnostics.plugin.SchedulerPlugin):
        """Pickles every task the scheduler receives, as it receives it."""

        name = "dataflow-test-graphs"

        def update_graph(self, scheduler, *, tasks, **kwargs):
            specs.extend(cloudpickle.dumps(scheduler.tasks[k].run_spec) for k in tasks)

    # the workers have credentials of their own, in their environment
    env = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "NO_PROXY": "127.0.0.1"}
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env=env,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False, timeout=60) as client,
    ):
        cluster.scheduler.add_plugin(GraphRecorder())
        ctx = Context(executor=DaskJobExecutor(client))
        # credentials passed in storage_options stay in this process: the worker cannot
        # read with them, and says so without showing them
        ds = ctx.load("zarr", path=url, storage_options=options, num_partitions=3)
        _no_secrets(repr(ds))
        with pytest.raises(ZarrReadError, match="credentials_in_graph=True") as info:
            ctx.run_udf(dataset=ds, udf=SumUDF())
        assert "'key', 'secret'" in str(info.value)
        _no_secrets("".join(traceback.format_exception(info.value)))
        # public options only: the worker reads with its own credentials
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        ds = ctx.load("zarr", path=url, storage_options={"endpoint_url": endpoint})
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        np.testing.assert_array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype="f4"))
        assert len(specs) > 6  # both graphs were seen
        for blob in specs:
            _no_secrets(blob)
        _no_secrets(client.get_scheduler_logs())
        _no_secrets(client.get_worker_logs())


def test_zarr_pickle_filter_on_a_numeric_array_is_refused(tmp_path):
    import numcodecs
    import zarr

    from dataflow.api import Context
    from dataflow.errors import DataSetException

    path = tmp_path / "pickled.zarr"
    zarr.create_array(
        str(path),
        shape=(4, 4, 2, 2),
        chunks=(1, 4, 2, 2),
        dtype="float32",
        zarr_format=2,
        filters=[numcodecs.Pickle()],
    )
    ctx = Context.make_with("inline")
    # refused either by zarr itself (this version) or by the adapter: never unpickled
    with pytest.raises(DataSetException, match="pickle"):
        ctx.load("zarr", path=path)
