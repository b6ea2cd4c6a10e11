"""Shared fixtures. Everything here is real data from the registries or built in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption(
        "--timed",
        choices=("all", "only", "skip"),
        default="all",
        help="tests marked `timed` measure time: run them with the rest (all), alone (only) or not at all (skip). "
        "`make test` runs the rest spread over the cores (-n JOBS, --timed skip), then these alone (--timed only).",
    )


def pytest_collection_modifyitems(config, items):
    mode = config.getoption("--timed")
    if mode == "all":
        return
    want = mode == "only"
    keep = [it for it in items if (it.get_closest_marker("timed") is not None) == want]
    drop = [it for it in items if (it.get_closest_marker("timed") is not None) != want]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session", autouse=True)
def _session_export_cache(tmp_path_factory):
    """Exports made by session fixtures cache into a folder of this session, never the checkout's."""
    import os

    saved = os.environ.get("BACKDROP_EXPORT_CACHE")
    os.environ["BACKDROP_EXPORT_CACHE"] = str(tmp_path_factory.mktemp("export-cache"))
    yield
    if saved is None:
        os.environ.pop("BACKDROP_EXPORT_CACHE", None)
    else:
        os.environ["BACKDROP_EXPORT_CACHE"] = saved


@pytest.fixture(autouse=True)
def _export_cache(tmp_path, monkeypatch):
    """Each test's exports start from an empty artifact cache of its own (a test that swaps a
    format out must not be served the real format's cached artifacts)."""
    monkeypatch.setenv("BACKDROP_EXPORT_CACHE", str(tmp_path / "export-cache"))


@pytest.fixture(scope="session")
def carphone_path():
    from backdrop.core.samples import carphone_clip

    return carphone_clip()


@pytest.fixture(scope="session")
def lite_checkpoint(tmp_path_factory):
    """An untrained checkpoint of the smallest variant (fast), with BatchNorm stats made
    non-trivial so that a wrong weight mapping cannot pass unnoticed."""
    from backdrop.models import build_model, save_checkpoint

    torch.manual_seed(1)
    model = build_model("lite")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("ckpt") / "lite.pt"
    save_checkpoint(model, path, meta={"trained": False})
    return path


# One small network exported once for the device tests (host-native, qemu-arm64, adb): the
# `lite` variant with a head fitted to the carphone clip at a 64x96 bucket, its golden (30
# frames, reset at 15) and its fp32 artifacts: ExecuTorch explicit and native, ONNX + ORT.
LITE_BUCKET_HW = (64, 96)


@pytest.fixture(scope="session")
def lite_64x96(carphone_path):
    from backdrop.core.buckets import Bucket
    from backdrop.models import build_model
    from helpers import structure_head

    torch.manual_seed(0)
    return structure_head(build_model("lite").eval(), carphone_path, Bucket("t", *LITE_BUCKET_HW))


@pytest.fixture(scope="session")
def lite_64x96_golden(lite_64x96):
    from backdrop.core.buckets import Bucket
    from backdrop.export.goldens import make_golden

    return make_golden(lite_64x96, Bucket("t", *LITE_BUCKET_HW), num_frames=30, reset_at=15)


@pytest.fixture(scope="session")
def lite_64x96_fp32(lite_64x96, tmp_path_factory):
    from backdrop.core.buckets import Bucket
    from backdrop.export.formats import FORMATS, ExportRequest

    out = tmp_path_factory.mktemp("lite-64x96-fp32")
    arts = []
    for name, form in (("executorch", "explicit"), ("executorch", "native"), ("onnx", "explicit")):
        arts += FORMATS.get(name).export(ExportRequest(lite_64x96, Bucket("t", *LITE_BUCKET_HW), form, "fp32", out, name))
    return arts


@pytest.fixture(scope="session")
def small_dist(tmp_path_factory):
    """A real export of the bundled model, small: one 64x96 bucket, ONNX fp32 (.onnx and .ort),
    a 30-frame golden; for commands that read an export folder (bench, results)."""
    from backdrop.core.buckets import BucketSet
    from backdrop.export.targets import TARGETS, Target, TargetEntry
    from backdrop.orchestration.pipeline import ExportSpec, export_target

    TARGETS.add("test-small", Target("test-small", "android", "nv21", "test", (TargetEntry("onnx", "fp32", ("explicit",)),)))
    try:
        return export_target(ExportSpec(target="test-small", buckets=BucketSet.parse("a=64x96"),
                                        out_root=tmp_path_factory.mktemp("small-dist"), golden_frames=30, jobs=1),
                             log=lambda m: None).out_dir
    finally:
        TARGETS.remove("test-small")


@pytest.fixture(scope="session")
def dashboard_store(small_dist, tmp_path_factory):
    """A results store with what the dashboard must show, all measured here but one run:

    - an A/B of the same export on this host (two copies, one session, rounds taking turns):
      a same-code rerun, which compare must not flag;
    - the second of those again with every frame 30 % slower (the planted regression), a minute
      later in the same session, which compare must flag;
    - the export on the emulated arm64 device (qemu-arm64, a few frames: functional timings);
    - a parity check on this host (`backdrop parity --store`).

    Returns {"store", "dist", "same", "base", "planted", "emulated", "host_tier"}: the store's path
    and the run ids ("base" is the run "same" and "planted" follow in the tier's order)."""
    import json
    import shutil
    from datetime import datetime, timedelta

    from typer.testing import CliRunner

    from backdrop.bench.document import document_id
    from backdrop.orchestration.cli import app
    from backdrop.results import open_store

    root = tmp_path_factory.mktemp("dashboard-store")
    store = root / "results.db"
    copy = root / "same-export"
    shutil.copytree(small_dist, copy)

    def run(*args):
        r = CliRunner().invoke(app, [*args, "--format", "json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout.strip().splitlines()[-1])

    # The protocol of tests/test_bench_cli.py's A/B: shorter rounds (60 frames, 0.25 s) made a
    # same-code rerun a "regression" once in CI on a noisy 2-core host.
    quick = ["--min-frames", "240", "--min-seconds", "1.6", "--rounds", "8", "--warmup", "3", "--no-peer"]
    a, b = run("bench", "--dist", str(small_dist), "--against", str(copy), "--store", str(store), *quick)
    emulated = run("bench", "--dist", str(small_dist), "--device", "qemu-arm64", "--artifacts", "a/onnx-*", "--store", str(store),
                   "--min-frames", "4", "--min-seconds", "0", "--rounds", "2", "--warmup", "1")
    run("parity", "--dist", str(copy), "--device", "host", "--store", str(store))  # writes reports/ into the copy
    # Runs of one session share their start and are ordered by id: the later of the two is the
    # one the planted run follows.
    first, second = sorted([a, b], key=document_id)
    planted = json.loads(json.dumps(second))
    planted["run"]["source"] = "test: the second run again, every frame 30 % slower (a planted regression)"
    for key in ("started_at", "finished_at"):
        t = datetime.fromisoformat(planted["run"][key].replace("Z", "+00:00")) + timedelta(minutes=1)
        planted["run"][key] = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for res in planted["results"]:
        res["e2e_ms"] = [v * 1.3 for v in res["e2e_ms"]]
        res["model_ms"] = [v * 1.3 for v in res["model_ms"]]
    with open_store(store) as db:
        db.write(planted, "the planted run")
    return {"store": store, "dist": small_dist, "base": document_id(first), "same": document_id(second),
            "planted": document_id(planted), "emulated": document_id(emulated), "host_tier": a["run"]["device"]["tier"]}
