"""Xception backbones as used by DeepNoise (torch).

Layer names follow timm's ``legacy_xception`` / Cadene's ``pretrainedmodels`` Xception
(``conv1``, ``bn1``, ``conv2``, ``bn2``, ``block1``.., ``conv3``, ``bn3``, ``conv4``,
``bn4``) so ImageNet weights from a local file copy over by name. Differences from the
ImageNet model, after the DeepNoise authors: the first conv is a ``in_chans`` 7x7 stride-2
conv, and there is no ReLU after the last batch-norm (``bn4``).
"""

from __future__ import annotations

import torch
from torch import nn


class SeparableConv2d(nn.Module):
    """Depthwise k x k conv then pointwise 1 x 1 conv, both without bias."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, kernel_size, 1, padding, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """Xception block: ``reps`` x (ReLU, separable conv, BN), optional max-pool, residual."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        reps: int,
        stride: int = 1,
        start_with_relu: bool = True,
        grow_first: bool = True,
    ) -> None:
        super().__init__()
        if out_ch != in_ch or stride != 1:
            self.skip: nn.Module | None = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
            self.skipbn: nn.Module | None = nn.BatchNorm2d(out_ch)
        else:
            self.skip = None
            self.skipbn = None
        layers: list[nn.Module] = []
        for i in range(reps):
            if grow_first:
                inc, outc = (in_ch if i == 0 else out_ch), out_ch
            else:
                inc, outc = in_ch, (in_ch if i < reps - 1 else out_ch)
            # Not in-place: the block input is still needed by the skip path.
            layers.append(nn.ReLU(inplace=i > 0))
            layers.append(SeparableConv2d(inc, outc, 3, 1))
            layers.append(nn.BatchNorm2d(outc))
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rep(x)
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return out + skip


def _scale(channels: int, width: float) -> int:
    """Channel count times ``width``, rounded to a multiple of 8 (at least 8)."""
    if width == 1.0:
        return channels
    return max(8, round(channels * width / 8) * 8)


class XceptionBackbone(nn.Module):
    """Xception feature extractor: ``(B, in_chans, H, W) -> (B, num_features, H/32, W/32)``.

    ``stem`` (2 convs), ``entry`` (3 stride-2 blocks), ``middle_blocks`` x ``middle`` wide
    blocks, one stride-2 exit block to ``exit[0]``, then separable convs to ``exit[1]`` and
    ``exit[2]``. ``width`` scales every channel count (CPU-sized variants).
    """

    def __init__(
        self,
        in_chans: int = 6,
        *,
        stem: tuple[int, int] = (32, 64),
        entry: tuple[int, int, int] = (128, 256, 728),
        middle: int = 728,
        middle_blocks: int = 8,
        exit: tuple[int, int, int] = (1024, 1536, 2048),
        width: float = 1.0,
        first_kernel: int = 7,
        first_stride: int = 2,
        final_relu: bool = False,
    ) -> None:
        super().__init__()
        if in_chans < 1 or middle_blocks < 0 or width <= 0:
            raise ValueError(
                f"bad Xception settings: in_chans={in_chans}, middle_blocks={middle_blocks}, "
                f"width={width}"
            )
        s0, s1 = (_scale(c, width) for c in stem)
        e0, e1, e2 = (_scale(c, width) for c in entry)
        mid = _scale(middle, width)
        x0, x1, x2 = (_scale(c, width) for c in exit)
        self.in_chans = in_chans
        self.num_features = x2

        self.conv1 = nn.Conv2d(
            in_chans, s0, first_kernel, first_stride, first_kernel // 2, bias=False
        )
        self.bn1 = nn.BatchNorm2d(s0)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(s0, s1, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(s1)
        self.act2 = nn.ReLU(inplace=True)

        blocks = _blocks(s1, (e0, e1, e2), mid, middle_blocks, x0)
        self.num_blocks = len(blocks)
        # block1..blockN attributes keep the timm/Cadene state-dict names.
        for i, block in enumerate(blocks, start=1):
            self.add_module(f"block{i}", block)

        self.conv3 = SeparableConv2d(x0, x1, 3, 1)
        self.bn3 = nn.BatchNorm2d(x1)
        self.act3 = nn.ReLU(inplace=True)
        self.conv4 = SeparableConv2d(x1, x2, 3, 1)
        self.bn4 = nn.BatchNorm2d(x2)
        # DeepNoise drops the ReLU after the last BN (features may be negative).
        self.act4: nn.Module = nn.ReLU(inplace=True) if final_relu else nn.Identity()
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, num_features, h, w)`` feature map."""
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        for i in range(1, self.num_blocks + 1):
            x = getattr(self, f"block{i}")(x)
        x = self.act3(self.bn3(self.conv3(x)))
        return self.act4(self.bn4(self.conv4(x)))


def _blocks(stem_out: int, entry: tuple[int, int, int], middle: int, middle_blocks: int,
            exit_out: int) -> list[nn.Module]:
    """Entry (3 stride-2 blocks), ``middle_blocks`` middle blocks and the exit block, in
    the order they run (created in this order: the weight initialisation draws from the
    RNG in it)."""
    e0, e1, e2 = entry
    blocks: list[nn.Module] = [
        Block(stem_out, e0, 2, 2, start_with_relu=False),
        Block(e0, e1, 2, 2),
        Block(e1, e2, 2, 2),
    ]
    prev = e2
    for _ in range(middle_blocks):
        blocks.append(Block(prev, middle, 3, 1))
        prev = middle
    blocks.append(Block(prev, exit_out, 2, 2, grow_first=False))
    return blocks


def _init_weights(model: nn.Module) -> None:
    """Kaiming-normal convolutions, unit batch norms (timm's Xception initialisation)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def xception(in_chans: int = 6, **kwargs: object) -> XceptionBackbone:
    """Standard Xception (entry 128/256/728, 8 x 728 middle, exit 1024/1536/2048)."""
    return XceptionBackbone(in_chans, **kwargs)  # type: ignore[arg-type]


def xception_wide(in_chans: int = 6, **kwargs: object) -> XceptionBackbone:
    """DeepNoise's Xception-Wide (stem 64/128, entry 256/384/1024, 8 x 1024 middle)."""
    cfg: dict[str, object] = {
        "stem": (64, 128),
        "entry": (256, 384, 1024),
        "middle": 1024,
        "exit": (1024, 1536, 2048),
    }
    cfg.update(kwargs)
    return XceptionBackbone(in_chans, **cfg)  # type: ignore[arg-type]


def xception_tiny(in_chans: int = 6, **kwargs: object) -> XceptionBackbone:
    """CPU-sized Xception (width 1/8, 2 middle blocks, 256 features) for demos and tests."""
    cfg: dict[str, object] = {"width": 0.125, "middle_blocks": 2}
    cfg.update(kwargs)
    return XceptionBackbone(in_chans, **cfg)  # type: ignore[arg-type]
