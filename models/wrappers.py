"""Mask-feedback wrappers: the two state forms every artifact comes in (explicit, native),
implementing the rule of :mod:`backdrop.core.contract`, which holds the call signatures,
tensor specs and wording. Both take the bucket-sized frame and return the person probability;
they differ in who keeps the previous mask (the "detect-with-mask" 4th channel).

The native form takes a reset *input* rather than offering a separate reset method because
ExecuTorch does not share buffers between methods and reloading a method does not clear them
(docs/formats.md); the TorchScript form additionally exports ``reset()``.
"""

from __future__ import annotations

import torch
from torch import nn

from backdrop.core.contract import STATE_FORMS, STATE_NAME
from backdrop.models.segmenter import Segmenter


class ExplicitStateWrapper(nn.Module):
    """``(frame, prev_mask) -> (mask, next_mask)``; the caller carries the state."""

    def __init__(self, model: Segmenter) -> None:
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor, prev_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.sigmoid(self.model(torch.cat([frame, prev_mask], dim=1)))
        return mask, mask


class NativeStateWrapper(nn.Module):
    """``(frame, reset) -> mask``; the previous mask lives in the ``mask_state`` buffer.

    Args:
        model: the segmenter.
        height, width: the bucket size (the state has a fixed shape).
    """

    def __init__(self, model: Segmenter, height: int, width: int) -> None:
        super().__init__()
        self.model = model
        self.register_buffer(STATE_NAME, torch.zeros(1, 1, height, width))

    def forward(self, frame: torch.Tensor, reset: torch.Tensor) -> torch.Tensor:
        prev = self.mask_state * (1.0 - reset)
        mask = torch.sigmoid(self.model(torch.cat([frame, prev], dim=1)))
        self.mask_state.copy_(mask)
        return mask

    @torch.jit.export
    def reset(self) -> None:
        """Clear the state (TorchScript / PyTorch Lite callers; others pass reset=1.0)."""
        self.mask_state.zero_()


def wrap(model: Segmenter, state_form: str, height: int, width: int) -> nn.Module:
    """The eval-mode, grad-free wrapper of ``state_form`` around ``model`` for one bucket."""
    if state_form == "explicit":
        wrapper: nn.Module = ExplicitStateWrapper(model)
    elif state_form == "native":
        wrapper = NativeStateWrapper(model, height, width)
    else:
        raise ValueError(f"unknown state form {state_form!r}; valid: {', '.join(STATE_FORMS)}")
    wrapper.eval()
    for p in wrapper.parameters():
        p.requires_grad_(False)
    return wrapper


def example_inputs(state_form: str, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes for tracing/export (a mid-grey frame, empty state)."""
    frame = torch.full((1, 3, height, width), 0.5)
    if state_form == "explicit":
        return frame, torch.zeros(1, 1, height, width)
    return frame, torch.ones(1)
