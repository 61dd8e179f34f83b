"""Batches on the training device: normalised, augmented and resized views (torch)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from deepnoise_engine.train import augment
from deepnoise_engine.train.data import ScreenData


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast
    runs a training step ~1.6x faster (2 cores, docs/performance.md); elsewhere torch
    emulates it, slower than float32."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # private: kept here
    except (AttributeError, RuntimeError):
        return False


class ImageViews:
    """Turns uint8 site batches into the network's input on ``device``."""

    def __init__(self, cfg: dict[str, Any], sd: ScreenData, device: Any) -> None:
        import torch

        self.device = device
        self.cuda = device.type == "cuda"
        self.size = cfg["data"]["image_size"]
        self.n_channels = len(sd.channels)
        rt = cfg["runtime"]
        self.amp = ("cuda" if self.cuda and rt["amp"] and torch.cuda.is_bf16_supported()
                    else "cpu" if not self.cuda and rt["cpu_amp"] and cpu_has_native_bf16()
                    else None)
        # NHWC: faster convolutions and pooling on CPUs too (1.2-1.4x per step, 2 cores)
        self.channels_last = cfg["runtime"]["channels_last"]
        self.mean_t = torch.as_tensor(sd.mean, device=device)
        self.std_t = torch.as_tensor(sd.std, device=device)

    @property
    def precision(self) -> str:
        """What the training steps compute in, as ``run.json`` and ``train.log`` say it."""
        return "bf16 autocast" if self.amp else "float32"

    def autocast(self) -> Any:
        """bf16 autocast with ``runtime.amp`` on a GPU that has it (``runtime.cpu_amp`` on a
        CPU that has it); else nothing."""
        import torch

        if self.amp:
            return torch.autocast(self.amp, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def views(self, imgs: Any, rows: np.ndarray, params: augment.Params) -> Any:
        """``imgs`` (on the device) normalised with their cache rows' statistics and
        augmented with ``params``."""
        import torch

        r = torch.as_tensor(rows, device=self.device)
        x = augment.apply(imgs, self.mean_t[r], self.std_t[r], params, self.size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def plain(self, imgs: Any, rows: np.ndarray) -> Any:
        """Normalised and resized, without augmentation (evaluation)."""
        return self.views(imgs, rows, augment.identity_params(len(rows), self.n_channels))
