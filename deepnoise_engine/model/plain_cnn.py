"""A plain convolutional backbone for small images on a CPU (torch).

Four 3x3 conv + batch-norm + ReLU layers (32, 64, 128, 256 channels x ``width``), the
first with stride ``first_stride``, a 2x2 max-pool after the second and third. At 64 px
(RxRx1's field at 1/8 scale, nuclei 4-5 px across) it keeps an 8x8 map before pooling,
where the tiny Xception's 7x7 stride-2 stem and four stride-2 stages leave 2x2. Measured
in docs/science.md: more accurate per multiply-add than the small Xceptions at 64 px.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True)]


class PlainCNN(nn.Module):
    """``(B, in_chans, H, W) -> (B, num_features, H/(4 s), W/(4 s))`` feature map."""

    def __init__(self, in_chans: int = 6, *, width: float = 1.0, first_stride: int = 2,
                 channels: tuple[int, int, int, int] = (32, 64, 128, 256)) -> None:
        super().__init__()
        if in_chans < 1 or width <= 0 or first_stride < 1:
            raise ValueError(f"bad PlainCNN settings: in_chans={in_chans}, width={width}, "
                             f"first_stride={first_stride}")
        c0, c1, c2, c3 = (max(8, round(c * width)) for c in channels)
        self.in_chans = in_chans
        self.num_features = c3
        self.features = nn.Sequential(
            *_conv(in_chans, c0, first_stride), *_conv(c0, c1), nn.MaxPool2d(2),
            *_conv(c1, c2), nn.MaxPool2d(2), *_conv(c2, c3))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def plain_cnn(in_chans: int = 6, **kwargs: object) -> PlainCNN:
    """Plain 4-layer CNN (32/64/128/256 channels, stride-2 first conv): the tiny preset's."""
    return PlainCNN(in_chans, **kwargs)  # type: ignore[arg-type]


def plain_cnn_wide(in_chans: int = 6, **kwargs: object) -> PlainCNN:
    """``plain_cnn`` at 1.5x the channels: the second model of the tiny ensemble, as
    Xception-Wide is the paper's."""
    kwargs.setdefault("width", 1.5)
    return PlainCNN(in_chans, **kwargs)  # type: ignore[arg-type]
