"""Every model variant: builds, runs on every bucket and odd sizes, exports, pads as documented;
the activation and squeeze-excite choices, and the int8-friendly variants."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from backdrop.core.buckets import DEFAULT_BUCKETS
from backdrop.core.errors import ConfigError, RegistryError
from backdrop.models import VARIANTS, SegmenterConfig, build_model
from backdrop.models.layers import HardSigmoid, Pad2d, SqueezeExcite

ODD_SIZES = [(1, 1), (7, 13), (143, 255), (97, 33)]


@pytest.mark.parametrize("variant", VARIANTS.names())
def test_variant_forward_every_bucket_and_odd_sizes(variant):
    model = build_model(variant)
    sizes = [(b.height, b.width) for b in DEFAULT_BUCKETS] + ODD_SIZES
    with torch.no_grad():
        for h, w in sizes:
            y = model(torch.rand(1, 4, h, w))
            assert y.shape == (1, 1, h, w), (variant, h, w)
            assert torch.isfinite(y).all()


@pytest.mark.parametrize("variant", VARIANTS.names())
def test_variant_exports_with_torch_export(variant):
    model = build_model(variant)
    b = DEFAULT_BUCKETS.get("landscape_16x9")
    x = torch.rand(1, 4, b.height, b.width)
    with torch.no_grad():
        ep = torch.export.export(model, (x,))
        torch.testing.assert_close(ep.module()(x), model(x))


def test_lite_is_in_mediapipe_size_class():
    n = sum(p.numel() for p in build_model("lite").parameters())
    assert n <= 500_000, n


def test_default_variant_fits_phone_budget():
    from backdrop.models.segmenter import DEFAULT_VARIANT

    n = sum(p.numel() for p in build_model(DEFAULT_VARIANT).parameters())
    assert n * 4 <= 8 * 1024 * 1024, f"{DEFAULT_VARIANT} is {n * 4 / 2**20:.1f} MB in fp32"


@pytest.mark.parametrize("mode", ["replicate", "reflect"])
@pytest.mark.parametrize("pad", [1, 2])
def test_concat_padding_equals_torch_padding(mode, pad):
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(Pad2d(pad, mode)(x), F.pad(x, (pad,) * 4, mode=mode), rtol=0, atol=0)


@pytest.mark.parametrize("padding", ["replicate", "reflect", "zeros"])
def test_padding_mode_applies_to_every_spatial_conv(padding):
    torch.manual_seed(0)
    model = build_model(SegmenterConfig("lite", decoder_channels=(8, 16, 16, 24, 32), padding=padding))
    with torch.no_grad():
        y = model(torch.rand(1, 4, 64, 96))
    assert y.shape == (1, 1, 64, 96)
    pads = [m for m in model.modules() if isinstance(m, Pad2d)]
    spatial = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1]
    if padding == "zeros":
        assert not pads and all(c.padding == (c.kernel_size[0] // 2,) * 2 for c in spatial)
    else:
        assert len(pads) == len(spatial) and all(p.mode == padding for p in pads)
        assert all(c.padding == (0, 0) for c in spatial)


def test_reflect_padding_clamps_on_dimensions_too_small_to_mirror():
    x = torch.arange(2.0).reshape(1, 1, 1, 2)
    y = Pad2d(2, "reflect")(x)
    assert y[0, 0, 0].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    assert y.shape == (1, 1, 5, 6)


def test_replicate_padding_has_no_zero_border_artifact():
    """A constant image through replicate padding stays constant at the border (zeros would not)."""
    conv = torch.nn.Sequential(Pad2d(1, "replicate"), torch.nn.Conv2d(1, 1, 3, bias=False))
    torch.nn.init.constant_(conv[1].weight, 1.0)
    y = conv(torch.ones(1, 1, 6, 6))
    torch.testing.assert_close(y, torch.full_like(y, 9.0))


def test_unknown_variant_lists_valid_names():
    with pytest.raises(RegistryError, match=r"Unknown model variant 'fbnetv3_x'.*Valid: .*fbnetv3_a"):
        build_model("fbnetv3_x")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"encoder": "resnet50"}, "Unknown encoder architecture 'resnet50'"),
        ({"padding": "circular"}, "Unknown padding 'circular'"),
        ({"num_stages": 3}, "num_stages must be 4 or 5"),
        ({"decoder_channels": (8, 8)}, "decoder_channels needs one width per encoder stage"),
        ({"width_mult": 0.0}, "width_mult must be in"),
        ({"activation": "gelu"}, r"Unknown activation 'gelu'\. Valid: hswish, relu\."),
        ({"activation": "none"}, r"Unknown activation 'none'\. Valid: hswish, relu\."),
        ({"se": "yes"}, "se must be true or false, got 'yes'"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SegmenterConfig(**kwargs)


def test_config_round_trip():
    cfg = VARIANTS.get("fbnetv3_a_s16")
    assert SegmenterConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="Unknown model config keys"):
        SegmenterConfig.from_dict({**cfg.to_dict(), "dropout": 0.1})


def _count(model, cls):
    return sum(isinstance(m, cls) for m in model.modules())


def test_defaults_keep_the_seed_network():
    cfg = SegmenterConfig()
    assert cfg.activation == "hswish" and cfg.se is True
    model = build_model("fbnetv3_a_s16")
    assert _count(model, torch.nn.Hardswish) == 50 and _count(model, SqueezeExcite) == 11


@pytest.mark.parametrize("variant", ["fbnetv3_a_s16_q", "lite_q"])
def test_int8_friendly_variants_have_no_hardswish_squeeze_excite_or_edge_padding(variant):
    model = build_model(variant)
    for cls in (torch.nn.Hardswish, SqueezeExcite, HardSigmoid, torch.nn.ReLU6, Pad2d):
        assert _count(model, cls) == 0, (variant, cls.__name__)
    assert _count(model, torch.nn.ReLU) > 0


def test_variants_are_the_documented_edits_of_their_bases():
    base, lite = VARIANTS.get("fbnetv3_a_s16"), VARIANTS.get("lite")
    assert VARIANTS.get("fbnetv3_a_s16_zp") == dataclasses.replace(base, padding="zeros")
    assert VARIANTS.get("fbnetv3_a_s16_q") == dataclasses.replace(base, activation="relu", se=False, padding="zeros")
    assert VARIANTS.get("lite_q") == dataclasses.replace(lite, activation="relu", se=False, padding="zeros")


def test_relu_replaces_every_hardswish():
    cfg = VARIANTS.get("lite")
    hswish = build_model(cfg)
    relu = build_model(dataclasses.replace(cfg, activation="relu"))
    assert _count(relu, torch.nn.Hardswish) == 0
    # every hard-swish became a ReLU; the squeeze-excite blocks keep their own inner ReLU
    assert _count(relu, torch.nn.ReLU) == _count(hswish, torch.nn.Hardswish) + _count(hswish, torch.nn.ReLU)
    assert _count(relu, SqueezeExcite) == _count(hswish, SqueezeExcite) > 0
    assert relu.state_dict().keys() == hswish.state_dict().keys()  # activations carry no weights


def test_se_false_drops_every_squeeze_excite():
    cfg = VARIANTS.get("lite")
    with_se = build_model(cfg)
    without = build_model(dataclasses.replace(cfg, se=False))
    assert _count(without, SqueezeExcite) == 0 and _count(without, HardSigmoid) == 0
    assert _count(without, torch.nn.Hardswish) == _count(with_se, torch.nn.Hardswish)
    se_params = sum(p.numel() for m in with_se.modules() if isinstance(m, SqueezeExcite) for p in m.parameters())
    assert sum(p.numel() for p in without.parameters()) == sum(p.numel() for p in with_se.parameters()) - se_params
    with torch.no_grad():
        assert without(torch.rand(1, 4, 33, 47)).shape == (1, 1, 33, 47)


def test_old_config_without_activation_and_se_loads_as_the_seed_network():
    """Checkpoints saved before ``activation`` / ``se`` existed store configs without them."""
    cfg = VARIANTS.get("fbnetv3_a_s16")
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("activation", "se")}
    assert old == {"encoder": "fbnetv3_a", "width_mult": 1.0, "num_stages": 4, "decoder_channels": [16, 24, 32, 48],
                   "padding": "replicate"}
    loaded = SegmenterConfig.from_dict(old)
    assert loaded == cfg and loaded.activation == "hswish" and loaded.se is True


def test_int8_friendly_variant_leaves_only_resize_and_sigmoid_to_float_in_pt2e():
    """XNNPACKQuantizer annotates every conv (ReLU fused), add and cat of ``lite_q``; only the
    bilinear resizes and the output sigmoid stay float (XNNPACK lowers them in fp32 only)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from backdrop.models.wrappers import example_inputs, wrap
    from backdrop.quantization.xnnpack_int8 import _float_ops, _make_quantizer

    h, w = 32, 56
    wrapper = wrap(build_model("lite_q"), "explicit", h, w)
    quantizer = _make_quantizer(None).set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad():
        graph = torch.export.export(wrapper, example_inputs("explicit", h, w)).module()
        prepared = prepare_pt2e(graph, quantizer)
    assert {k: v["count"] for k, v in _float_ops(prepared).items()} == {"sigmoid": 1, "upsample_bilinear2d": 5}


def test_model_table_in_docs_is_fresh():
    """docs/models.md is generated by scripts/model_table.py; regenerate it when variants change."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / "model_table.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
