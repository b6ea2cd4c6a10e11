"""Checkpoints: one file, config + weights, and a clear error for each way a file can be bad."""

from __future__ import annotations

import pytest
import torch

from backdrop.core.errors import CheckpointError
from backdrop.models import build_model, load_checkpoint, save_checkpoint


def _payload(path):
    return torch.load(path, weights_only=True)


def test_round_trip_needs_nothing_but_the_file(lite_checkpoint):
    ckpt = load_checkpoint(lite_checkpoint)
    assert ckpt.config.encoder == "lite"
    assert ckpt.meta == {"trained": False}
    assert len(ckpt.sha256) == 64
    original = _payload(lite_checkpoint)["state_dict"]
    for k, v in ckpt.model.state_dict().items():
        torch.testing.assert_close(v, original[k], rtol=0, atol=0)
    assert not ckpt.model.training


def test_loading_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"backdrop_checkpoint": 1, "config": {}, "state_dict": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="corrupt and could not be read"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"Checkpoint not found: .*nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_not_a_checkpoint_text_file(tmp_path):
    p = tmp_path / "model.pt"
    p.write_text("hello")
    with pytest.raises(CheckpointError, match=r"not a backdrop checkpoint: not a torch.save archive"):
        load_checkpoint(p)


def test_bare_state_dict_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(build_model("lite").state_dict(), p)
    with pytest.raises(CheckpointError, match=r"holds a bare state_dict"):
        load_checkpoint(p)


def test_truncated_file(lite_checkpoint, tmp_path):
    data = lite_checkpoint.read_bytes()
    p = tmp_path / "cut.pt"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt"):
        load_checkpoint(p)


def _rewrite(src, dst, edit):
    obj = _payload(src)
    edit(obj)
    torch.save(obj, dst)
    return dst


def test_unknown_architecture(lite_checkpoint, tmp_path):
    p = _rewrite(lite_checkpoint, tmp_path / "a.pt", lambda o: o["config"].update(encoder="mobilenet_v9"))
    with pytest.raises(CheckpointError, match=r"Unknown encoder architecture 'mobilenet_v9'.*Valid: .*fbnetv3_a"):
        load_checkpoint(p)


def test_missing_and_unexpected_keys_are_named(lite_checkpoint, tmp_path):
    def edit(o):
        del o["state_dict"]["head.bias"]
        o["state_dict"]["extra.weight"] = torch.zeros(1)

    p = _rewrite(lite_checkpoint, tmp_path / "k.pt", edit)
    with pytest.raises(CheckpointError, match=r"missing keys: head\.bias; unexpected keys: extra\.weight"):
        load_checkpoint(p)


def test_shape_mismatch_is_named(lite_checkpoint, tmp_path):
    p = _rewrite(lite_checkpoint, tmp_path / "s.pt", lambda o: o["state_dict"].update({"head.weight": torch.zeros(2, 8, 1, 1)}))
    with pytest.raises(CheckpointError, match=r"shape mismatches: head\.weight is \(2, 8, 1, 1\) in the file, \(1, 8, 1, 1\)"):
        load_checkpoint(p)


def test_future_format_version(lite_checkpoint, tmp_path):
    p = _rewrite(lite_checkpoint, tmp_path / "v.pt", lambda o: o.update(backdrop_checkpoint=99))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(p)


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "m.pt"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(build_model("lite"), target)
    assert list(tmp_path.iterdir()) == []


def test_old_checkpoint_without_activation_and_se_loads_unchanged(lite_checkpoint, tmp_path):
    """Checkpoints saved before the config had ``activation`` and ``se`` load as the network
    they were saved from (hard-swish, squeeze-excite), with the same weights and outputs."""

    def edit(o):
        o["config"].pop("activation", None)
        o["config"].pop("se", None)

    p = _rewrite(lite_checkpoint, tmp_path / "old.pt", edit)
    assert set(_payload(p)["config"]) == {"encoder", "width_mult", "num_stages", "decoder_channels", "padding"}
    old, new = load_checkpoint(p), load_checkpoint(lite_checkpoint)
    assert old.config == new.config and old.config.activation == "hswish" and old.config.se is True
    x = torch.rand(1, 4, 24, 40)
    with torch.no_grad():
        torch.testing.assert_close(old.model(x), new.model(x), rtol=0, atol=0)


def test_new_config_fields_round_trip(tmp_path):
    model = build_model("lite_q")
    ckpt = load_checkpoint(save_checkpoint(model, tmp_path / "q.pt"))
    assert ckpt.config == model.config and ckpt.config.activation == "relu" and ckpt.config.se is False
