"""Shared fixtures. Everything here is real data from the registries or built in the test."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


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
