"""Model registry (timm style) and the DeepNoise network: backbone -> pool -> L2 -> head.

``create_model("xception" | "xception_wide" | "xception_tiny" | "plain_cnn" | ... |
<any timm name>, ...)``.
Weights are never downloaded: timm models are built with ``pretrained=False`` and an
ImageNet initialisation can only come from a local file (``pretrained_file``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepnoise_engine.model import plain_cnn as _plain_cnn
from deepnoise_engine.model import xception as _xception
from deepnoise_engine.model.arcface import ArcFaceHead, SoftmaxHead
from deepnoise_engine.model.errors import CheckpointError, UnknownModelError

BackboneFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, BackboneFactory] = {}

HEADS = ("arcface", "softmax")


def register_model(
    fn: BackboneFactory | None = None, *, name: str | None = None
) -> Any:
    """Decorator: register ``fn(in_chans, **kwargs) -> backbone`` under ``name`` (or its name).

    The backbone must have ``num_features`` and map ``(B, C, H, W)`` to a feature map
    ``(B, F, h, w)`` or pooled features ``(B, F)``.
    """

    def deco(f: BackboneFactory) -> BackboneFactory:
        _REGISTRY[name or f.__name__] = f
        return f

    return deco(fn) if fn is not None else deco


register_model(_xception.xception)
register_model(_xception.xception_wide)
register_model(_xception.xception_tiny)
register_model(_plain_cnn.plain_cnn)
register_model(_plain_cnn.plain_cnn_wide)


def list_models(include_timm: bool = False, pattern: str = "") -> list[str]:
    """Registered model names (sorted); ``include_timm`` adds timm's names matching ``pattern``."""
    names = sorted(_REGISTRY)
    if include_timm:
        import timm

        names += [n for n in timm.list_models(pattern or "*") if n not in _REGISTRY]
    return names


def _build_backbone(name: str, in_chans: int, kwargs: dict[str, Any]) -> tuple[nn.Module, bool]:
    """The backbone and whether it returns a feature map (True) or pooled features."""
    if name in _REGISTRY:
        return _REGISTRY[name](in_chans=in_chans, **kwargs), True
    import timm

    if not timm.is_model(name):
        raise UnknownModelError(
            f"unknown model {name!r}: use one of {', '.join(sorted(_REGISTRY))} "
            "or a timm model name (see timm.list_models())"
        )
    # num_classes=0: timm returns pooled (B, F) features; pretrained=False: never download.
    backbone = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    return backbone, False


class DeepNoiseNet(nn.Module):
    """Backbone -> global average pool -> (optional linear to ``embedding_dim``) -> head.

    ``forward(x (B, C, H, W), labels (B,) | None) -> logits (B, K)``;
    ``embed(x) -> (B, D)`` L2-normalised. The ArcFace head works on the L2-normalised
    embedding (cosines); the softmax head is a linear layer on the un-normalised pooled
    embedding (a linear layer on unit vectors caps the logits and trains slowly).
    ``spec`` holds everything needed to rebuild the model (for checkpoints).
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        spatial: bool,
        num_classes: int,
        head: str,
        arcface_s: float,
        arcface_m: float,
        embedding_dim: int | None,
        spec: dict[str, Any],
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.spatial = spatial
        self.num_features = int(backbone.num_features)
        self.neck: nn.Module = nn.Identity()
        if embedding_dim:
            self.neck = nn.Linear(self.num_features, embedding_dim, bias=False)
        self.embedding_dim = int(embedding_dim or self.num_features)
        self.num_classes = num_classes
        self.head_type = head
        if head == "arcface":
            self.head: nn.Module = ArcFaceHead(
                self.embedding_dim, num_classes, arcface_s, arcface_m
            )
        else:
            self.head = SoftmaxHead(self.embedding_dim, num_classes)
        self.spec = spec
        self.in_chans = int(spec["kwargs"]["in_chans"])
        self.pretrained_report: dict[str, list[str]] | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, D)`` pooled (and projected) embedding, not normalised."""
        f = self.backbone(x)
        if self.spatial:
            f = f.mean(dim=(2, 3))  # global average pooling
        return self.neck(f)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, D)`` L2-normalised embedding."""
        return F.normalize(self.features(x).float(), dim=1)

    def logits(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Head only: ``features (B, D)`` from ``features()`` -> ``(B, K)``."""
        if self.head_type == "arcface":
            return self.head(F.normalize(features.float(), dim=1), labels)
        return self.head(features, labels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` (+ ``(B,)`` labels: ArcFace margin) -> ``(B, K)`` logits."""
        return self.logits(self.features(x), labels)

    @property
    def head_meta(self) -> dict[str, Any]:
        """``{"type", "s", "m"}`` for checkpoint metadata (s, m are None for softmax)."""
        if self.head_type == "arcface":
            return {"type": "arcface", "s": self.head.s, "m": self.head.m}
        return {"type": "softmax", "s": None, "m": None}


def create_model(
    name: str,
    *,
    in_chans: int,
    num_classes: int,
    head: str = "arcface",
    arcface_s: float = 30.0,
    arcface_m: float = 0.1,
    embedding_dim: int | None = None,
    pretrained_file: str | Path | None = None,
    **backbone_kwargs: Any,
) -> DeepNoiseNet:
    """Build a DeepNoise network. ``backbone_kwargs`` go to the backbone factory (or timm).

    ``pretrained_file``: a local safetensors file or torch state dict (loaded with
    ``weights_only=True``) whose matching tensors initialise the backbone; the first conv
    is adapted to ``in_chans``. Nothing is ever downloaded.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}: expected one of {', '.join(HEADS)}")
    if int(in_chans) < 1 or int(num_classes) < 1:
        raise ValueError(f"in_chans and num_classes must be >= 1, got {in_chans}, {num_classes}")
    backbone, spatial = _build_backbone(name, int(in_chans), dict(backbone_kwargs))
    spec = {
        "name": name,
        "kwargs": {
            "in_chans": int(in_chans),
            "num_classes": int(num_classes),
            "head": head,
            "arcface_s": float(arcface_s),
            "arcface_m": float(arcface_m),
            "embedding_dim": int(embedding_dim) if embedding_dim else None,
            **backbone_kwargs,
        },
    }
    model = DeepNoiseNet(
        backbone,
        spatial=spatial,
        num_classes=int(num_classes),
        head=head,
        arcface_s=arcface_s,
        arcface_m=arcface_m,
        embedding_dim=embedding_dim,
        spec=spec,
    )
    if pretrained_file is not None:
        model.pretrained_report = load_pretrained(model.backbone, pretrained_file)
    return model


# -- local pretrained weights -------------------------------------------------------------

def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file, never unpickling arbitrary objects.

    ``.safetensors`` via safetensors; anything else via ``torch.load(weights_only=True)``
    (a nested ``state_dict`` / ``model`` entry is unwrapped).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("pretrained weights file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or refused (non-tensor) pickle content
        raise CheckpointError(f"cannot read weights: {exc}", path) from exc
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError("weights file holds no state dict", path)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "backbone.", "model."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def adapt_first_conv(weight: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
    """Adapt ``(O, 3, k, k)`` RGB conv weights to ``(O, C, k', k')``.

    Channels: the mean over RGB repeated C times, scaled by 3 / C (keeps the activation
    scale). Kernel: a smaller kernel is centred in zeros (same response at the centre),
    a larger one is resized bilinearly.
    """
    out_ch, in_ch, kh, kw = target_shape
    if weight.shape[0] != out_ch:
        raise ValueError(f"first conv has {weight.shape[0]} filters, model needs {out_ch}")
    w = weight.float()
    if w.shape[1] != in_ch:
        w = w.mean(dim=1, keepdim=True).repeat(1, in_ch, 1, 1) * (w.shape[1] / in_ch)
    if w.shape[2:] != (kh, kw):
        if w.shape[2] <= kh and w.shape[3] <= kw:
            padded = torch.zeros(out_ch, in_ch, kh, kw)
            top, left = (kh - w.shape[2]) // 2, (kw - w.shape[3]) // 2
            padded[:, :, top:top + w.shape[2], left:left + w.shape[3]] = w
            w = padded
        else:
            w = F.interpolate(w, size=(kh, kw), mode="bilinear", align_corners=False)
            w = w * (weight.shape[2] * weight.shape[3]) / (kh * kw)
    return w.to(weight.dtype)


def _first_conv_key(module: nn.Module) -> str | None:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            return f"{name}.weight"
    return None


def load_pretrained(backbone: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Copy matching tensors of a local file into ``backbone``; adapt the first conv.

    Returns ``{"copied": [...], "adapted": [...], "skipped": [...]}`` (state-dict keys;
    ``skipped`` are file tensors with no same-shaped counterpart, e.g. the ImageNet fc).
    """
    source = {_strip_prefix(k): v for k, v in read_state_dict(path).items()}
    own = backbone.state_dict()
    first = _first_conv_key(backbone)
    report: dict[str, list[str]] = {"copied": [], "adapted": [], "skipped": []}
    new_state: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key not in own:
            report["skipped"].append(key)
        elif own[key].shape == value.shape:
            new_state[key] = value.to(own[key].dtype)
            report["copied"].append(key)
        elif key == first and value.dim() == 4:
            try:
                new_state[key] = adapt_first_conv(value, own[key].shape)
                report["adapted"].append(key)
            except ValueError:
                report["skipped"].append(key)
        else:
            report["skipped"].append(key)
    if not new_state:
        raise CheckpointError(
            "no tensor in the file matches the model (wrong architecture?)", path
        )
    backbone.load_state_dict(new_state, strict=False)
    return report


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not, buffers excluded)."""
    return sum(p.numel() for p in module.parameters())

