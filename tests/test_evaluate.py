"""The eval stage end to end on the real carphone clip (backdrop.orchestration.evaluate, `backdrop eval`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from backdrop.core import metrics as M
from backdrop.core.errors import BackdropError, ConfigError, EvalError, InputError
from backdrop.core.maskio import MaskSequence, save_masks
from backdrop.orchestration.commands.eval import eval_command
from backdrop.orchestration.evaluate import EvalSpec, evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def carphone_path() -> str:
    from backdrop.core.samples import carphone_clip

    return str(carphone_clip())


def read_carphone() -> list[np.ndarray]:
    cap = cv2.VideoCapture(carphone_path())
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 120 and frames[0].shape == (144, 176, 3)
    return frames


def person_ellipses(h: int = 144, w: int = 176) -> np.ndarray:
    """Head and shoulders of the carphone speaker in frame 0, as two ellipses."""
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (88, 62), (27, 38), 0, 0, 360, 1, -1)
    cv2.ellipse(m, (100, 150), (78, 50), 0, 0, 360, 1, -1)
    return m.astype(bool)


def synthetic_labels_and_predictions(frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Deterministic labels (the ellipses carried along by DIS flow) and soft predictions (the
    label blurred, shifted 1 px on odd frames: a flickering model)."""
    est = M.make_flow_estimator("ultrafast")
    labels = [person_ellipses()]
    for a, b in zip(frames, frames[1:]):
        flow = M.backward_flow(a, b, estimator=est)
        labels.append(M.warp_backward(labels[-1], flow) >= 0.5)
    preds = []
    for i, g in enumerate(labels):
        soft = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 2.0)
        if i % 2:
            soft = np.roll(soft, 1, axis=1)
        preds.append(np.clip(soft, 0, 1).astype(np.float32))
    return labels, preds


def write_pngs(folder: Path, masks: list[np.ndarray], scale: int) -> None:
    folder.mkdir(parents=True)
    for i, m in enumerate(masks):
        img = np.round(np.asarray(m, np.float32) * scale).astype(np.uint8)
        assert cv2.imwrite(str(folder / f"{i:05d}.png"), img)


def write_npz(path: Path, masks: list[np.ndarray]) -> None:
    n = len(masks)
    save_masks(
        MaskSequence(
            masks=[np.asarray(m, np.float32) for m in masks],
            frame_names=[f"frame_{i:05d}" for i in range(n)],
            buckets=["landscape"] * n,
            resets=[i == 0 for i in range(n)],
        ),
        path,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("carphone")
    frames = read_carphone()
    labels, preds = synthetic_labels_and_predictions(frames)
    d = {"root": root, "frames": frames, "labels": labels, "preds": preds, "video": carphone_path()}
    # One video: predictions as masks.npz, labels as 0/255 PNGs, frames = the .mp4.
    write_npz(root / "single" / "masks.npz", preds)
    write_pngs(root / "single" / "labels", labels, 255)
    # A set of three videos (the clip in thirds), every layout and value convention mixed.
    parts = {"car_a": slice(0, 40), "car_b": slice(40, 80), "car_c": slice(80, 120)}
    write_npz(root / "set" / "pred" / "car_a.npz", preds[parts["car_a"]])
    write_pngs(root / "set" / "pred" / "car_b", preds[parts["car_b"]], 255)  # soft 0..255
    write_pngs(root / "set" / "pred" / "car_c", [p >= 0.5 for p in preds[parts["car_c"]]], 1)  # binary 0/1
    write_pngs(root / "set" / "labels" / "car_a", labels[parts["car_a"]], 255)
    write_pngs(root / "set" / "labels" / "car_b", labels[parts["car_b"]], 1)
    write_npz(root / "set" / "labels" / "car_c.npz", labels[parts["car_c"]])
    for name, sl in parts.items():
        (root / "set" / "frames" / name).mkdir(parents=True)
        for i, f in enumerate(frames[sl]):
            cv2.imwrite(str(root / "set" / "frames" / name / f"{i:05d}.png"), f)
    meta = {
        "videos": {
            "car_a": {"lighting": "daylight", "pose": "frontal"},
            "car_b": {"lighting": "daylight", "pose": "turned"},
            "car_c": {"lighting": "shade", "pose": "frontal"},
        }
    }
    (root / "set" / "meta.json").write_text(json.dumps(meta))
    return d


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands, so `eval` is a subcommand as in backdrop
    return app


def run_cli(*args: str):
    return CliRunner().invoke(cli_app(), ["eval", *map(str, args)])


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100


def test_eval_single_video_end_to_end_through_cli(data, tmp_path):
    root = data["root"]
    out = tmp_path / "eval"
    res = run_cli("--predictions", root / "single" / "masks.npz", "--labels", root / "single" / "labels",
                  "--frames", data["video"], "--out", out, "--flow-preset", "fast")
    assert res.exit_code == 0, res.output
    assert f"wrote {out / 'report.json'}" in res.output and "flow-warped (DIS fast)" in res.output
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == "backdrop-eval-report"
    assert report["summary"]["videos"] == 1 and report["summary"]["frames"] == 120
    v = report["videos"][0]
    assert v["name"] == "single" and v["threshold"] == 0.5
    assert len(v["per_frame"]["iou"]) == 120 and len(v["per_pair"]["warped_iou"]) == 119
    assert v["per_frame"]["frame_names"][3] == "frame_00003"
    # Recompute a few frames independently from the arrays.
    for i in (0, 1, 57):
        assert v["per_frame"]["iou"][i] == pytest.approx(M.iou(data["preds"][i], data["labels"][i]))
        assert v["per_frame"]["boundary_iou"][i] == pytest.approx(M.boundary_iou(data["preds"][i], data["labels"][i]))
    m = report["summary"]["metrics"]
    assert 0.9 < m["iou"]["mean"] < 1.0 and m["iou"]["low"] is None  # one video: no interval
    assert m["boundary_iou"]["mean"] < m["iou"]["mean"]
    # The 1 px flicker costs static temporal IoU; flow warping does not remove it but the
    # (slow) scene motion is compensated, so warped is at least close to static.
    assert 0.8 < m["temporal_iou"]["mean"] < 1.0 and 0.8 < m["warped_iou"]["mean"] <= 1.0
    assert m["mean_abs_change"]["mean"] > 0
    assert report["config"]["flow"] == {"method": "opencv-dis", "preset": "fast", "on": "luma"}
    assert report["fairness"] is None
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# backdrop eval") and "| single | 120 |" in summary
    assert [Path(p).name for p in report["outputs"]["plots"]] == ["frames_single.png"]
    assert_png(out / "plots" / "frames_single.png")


def test_eval_video_set_with_meta_and_fairness(data, tmp_path):
    s = data["root"] / "set"
    out = tmp_path / "eval"
    res = run_cli("-p", s / "pred", "-l", s / "labels", "--meta", s / "meta.json", "--frames", s / "frames",
                  "-o", out, "--min-videos", "2", "--format", "json")
    assert res.exit_code == 0, res.output
    printed = json.loads(res.output)
    report = json.loads((out / "report.json").read_text())
    assert printed["summary"] == report["summary"] and printed["outputs"] == report["outputs"]
    assert [v["name"] for v in report["videos"]] == ["car_a", "car_b", "car_c"]
    assert [v["frames"] for v in report["videos"]] == [40, 40, 40]
    # car_c's predictions are 0/1 PNGs: read as binary, so they equal the thresholded soft masks.
    c = report["videos"][2]
    assert c["per_frame"]["iou"][5] == pytest.approx(M.iou(data["preds"][85], data["labels"][85]))
    m = report["summary"]["metrics"]
    assert m["iou"]["low"] <= m["iou"]["mean"] <= m["iou"]["high"]
    fair = report["fairness"]
    assert fair["bootstrap"]["unit"] == "video" and fair["min_videos"] == 2
    classes = {(c["category"], c["class"]): c for c in fair["classes"]}
    assert classes[("lighting", "daylight")]["n_videos"] == 2 and not classes[("lighting", "daylight")]["few_videos"]
    assert classes[("lighting", "shade")]["n_videos"] == 1 and classes[("lighting", "shade")]["few_videos"]
    assert classes[("lighting", "shade")]["iou"]["low"] is None
    expected = np.mean([report["videos"][0]["mean"]["iou"], report["videos"][1]["mean"]["iou"]])
    assert classes[("lighting", "daylight")]["iou"]["mean"] == pytest.approx(expected)
    assert any("fewer than 2 videos" in n for n in report["notes"])
    names = sorted(Path(p).name for p in report["outputs"]["plots"])
    assert names == ["fairness.png", "frames_car_a.png", "frames_car_b.png", "frames_car_c.png"]
    for p in report["outputs"]["plots"]:
        assert_png(Path(p))
    md = (out / "summary.md").read_text()
    assert "| lighting | shade | 1 |" in md and "![fairness](plots/fairness.png)" in md


def test_eval_without_frames_skips_flow_and_says_so(data, tmp_path):
    root = data["root"]
    res = run_cli("-p", root / "single" / "masks.npz", "-l", root / "single" / "labels", "-o", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "flow-warped skipped (no --frames)" in res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["videos"][0]["per_pair"]["warped_iou"] is None
    assert report["summary"]["metrics"]["warped_iou"]["mean"] is None
    assert any("Flow-warped temporal IoU skipped: no --frames given" in n for n in report["notes"])


def test_threshold_option_overrides_stored_threshold(data, tmp_path):
    root = data["root"]
    r = evaluate(EvalSpec(root / "single" / "masks.npz", root / "single" / "labels", tmp_path, threshold=0.9,
                          plots=False))
    assert r.videos[0].threshold == 0.9
    assert r.videos[0].iou[0] == pytest.approx(M.iou(data["preds"][0], data["labels"][0], threshold=0.9))
    assert r.plot_paths == ()


# ---------------------------------------------------------------- bad inputs name the file


def copy_labels(data, tmp_path) -> Path:
    dst = tmp_path / "labels"
    shutil.copytree(data["root"] / "single" / "labels", dst)
    return dst


def spec(data, labels: Path, tmp_path, **kw) -> EvalSpec:
    return EvalSpec(predictions=data["root"] / "single" / "masks.npz", labels=labels, out=tmp_path / "o",
                    plots=False, **kw)


def test_error_missing_predictions(data, tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(InputError) as e:
        evaluate(EvalSpec(missing, data["root"] / "single" / "labels", tmp_path / "o"))
    assert str(e.value) == (
        f"Predictions not found: {missing}. Pass --predictions a masks.npz file, a folder of PNG masks, or a "
        "folder with one of those per video (docs/eval-dataset.md)."
    )


def test_error_missing_labels_through_cli(data, tmp_path):
    res = run_cli("-p", data["root"] / "single" / "masks.npz", "-l", tmp_path / "none", "-o", tmp_path / "o")
    assert res.exit_code != 0 and isinstance(res.exception, InputError)
    assert f"Labels not found: {tmp_path / 'none'}. Pass --labels" in str(res.exception)


def test_error_mismatched_frame_counts(data, tmp_path):
    labels = copy_labels(data, tmp_path)
    (labels / "00119.png").unlink()
    with pytest.raises(EvalError) as e:
        evaluate(spec(data, labels, tmp_path))
    assert str(e.value) == (
        f"Video 'single': {data['root'] / 'single' / 'masks.npz'} has 120 prediction frames but {labels} has 119 "
        "label frames. Give one label per predicted frame (PNG masks are paired in file-name order)."
    )


def test_error_mismatched_sizes(data, tmp_path):
    labels = copy_labels(data, tmp_path)
    small = cv2.resize(cv2.imread(str(labels / "00007.png"), cv2.IMREAD_UNCHANGED), (88, 72),
                       interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(labels / "00007.png"), small)
    with pytest.raises(EvalError) as e:
        evaluate(spec(data, labels, tmp_path))
    msg = str(e.value)
    assert msg.startswith("Video 'single', frame 7: prediction ")
    assert "masks.npz [mask_00007, frame 'frame_00007'] is 144x176" in msg
    assert f"label {labels / '00007.png'} is 72x88 (HxW)" in msg


def test_error_non_binary_label(data, tmp_path):
    labels = copy_labels(data, tmp_path)
    img = cv2.imread(str(labels / "00005.png"), cv2.IMREAD_UNCHANGED)
    img[0, 0] = 128
    cv2.imwrite(str(labels / "00005.png"), img)
    with pytest.raises(EvalError) as e:
        evaluate(spec(data, labels, tmp_path))
    assert str(e.value) == (
        f"Label {labels / '00005.png'} is not binary: it has values 0, 128, 255. Labels must be 8-bit PNGs with "
        "0/1 or 0/255 only; threshold soft labels (e.g. value >= 128 -> 255) before eval."
    )


def test_error_frames_count_and_missing_frames(data, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(data["frames"][:10]):
        cv2.imwrite(str(frames / f"{i:03d}.jpg"), f)
    with pytest.raises(EvalError, match=rf"{frames} has 10 frames but .*masks.npz has 120 masks"):
        evaluate(spec(data, data["root"] / "single" / "labels", tmp_path, frames=frames))
    with pytest.raises(InputError, match=r"Frames not found: .*gone.mp4"):
        evaluate(spec(data, data["root"] / "single" / "labels", tmp_path, frames=tmp_path / "gone.mp4"))


def test_error_set_without_frames_for_a_video(data, tmp_path):
    s = data["root"] / "set"
    frames = tmp_path / "frames"
    shutil.copytree(s / "frames", frames)
    shutil.rmtree(frames / "car_b")
    (frames / "car_b.txt").write_text("not a video")
    with pytest.raises(InputError, match=rf"{frames} has no frames for video 'car_b'. Add car_b.mp4 \(or .avi"):
        evaluate(EvalSpec(s / "pred", s / "labels", tmp_path / "o", frames=frames, plots=False))


def test_error_set_layout_mismatches(data, tmp_path):
    s = data["root"] / "set"
    with pytest.raises(EvalError, match=r"holds one video but .* holds a set of videos"):
        evaluate(EvalSpec(data["root"] / "single" / "masks.npz", s / "labels", tmp_path / "o"))
    labels = tmp_path / "labels"
    shutil.copytree(s / "labels", labels)
    shutil.rmtree(labels / "car_b")
    with pytest.raises(EvalError, match=rf"no labels in {labels} for: car_b"):
        evaluate(EvalSpec(s / "pred", labels, tmp_path / "o"))
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"videos": {"car_a": {"x": "1"}, "car_z": {"x": "2"}}}))
    with pytest.raises(EvalError, match=rf"{meta} lists 1 video\(s\) that have no predictions: car_z"):
        evaluate(EvalSpec(s / "pred", s / "labels", tmp_path / "o", meta=meta))
    mixed = tmp_path / "mixed"
    shutil.copytree(s / "labels" / "car_a", mixed)
    (mixed / "extra").mkdir()
    with pytest.raises(InputError, match=rf"{mixed} mixes PNG masks with per-video entries \(extra\)"):
        evaluate(EvalSpec(mixed, mixed, tmp_path / "o"))


def test_bad_settings_are_config_errors(data, tmp_path):
    with pytest.raises(ConfigError, match="Unknown optical-flow preset 'slowest'"):
        spec(data, data["root"] / "single" / "labels", tmp_path, flow_preset="slowest")
    res = run_cli("-p", "a", "-l", "b", "--threshold", "1.5")
    assert isinstance(res.exception, ConfigError) and "--threshold must be in (0, 1]" in str(res.exception)
    assert issubclass(EvalError, BackdropError)


def test_help_describes_the_options():
    res = CliRunner().invoke(cli_app(), ["eval", "--help"], terminal_width=200)
    assert res.exit_code == 0
    for opt in ("--predictions", "--labels", "--meta", "--frames", "--out", "--dilation-ratio", "--threshold",
                "--flow-preset", "--format"):
        assert opt in res.output
    assert "ultrafast" in res.output and "medium" in res.output
