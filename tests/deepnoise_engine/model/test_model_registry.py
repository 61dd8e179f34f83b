"""create_model: shapes, embeddings, parameter counts, timm backbones, local pretrained init."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from deepnoise_engine.model import (
    UnknownModelError,
    count_parameters,
    create_model,
    list_models,
    register_model,
)
from deepnoise_engine.model.checkpoint import CheckpointError
from deepnoise_engine.model.xception import XceptionBackbone

torch.set_num_threads(1)


def test_tiny_forward_shapes_and_unit_embeddings() -> None:
    torch.manual_seed(0)
    model = create_model("xception_tiny", in_chans=5, num_classes=7).eval()
    x = torch.randn(3, 5, 64, 64)
    with torch.no_grad():
        logits = model(x)
        emb = model.embed(x)
        with_labels = model(x, torch.tensor([0, 1, 2]))
    assert logits.shape == (3, 7)
    assert emb.shape == (3, model.embedding_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    # ArcFace without labels: s * cos, so |logits| <= s
    assert logits.abs().max() <= 30.0 + 1e-4
    # the margin changes exactly the target logits
    changed = (with_labels != logits).nonzero().tolist()
    assert sorted(changed) == [[0, 0], [1, 1], [2, 2]]


def test_no_relu_after_last_batch_norm() -> None:
    torch.manual_seed(0)
    backbone = XceptionBackbone(6, width=0.125, middle_blocks=1)
    feats = backbone(torch.randn(2, 6, 64, 64))
    assert (feats < 0).any()  # a final ReLU would make every feature >= 0
    relu = XceptionBackbone(6, width=0.125, middle_blocks=1, final_relu=True)
    assert (relu(torch.randn(2, 6, 64, 64)) >= 0).all()


def test_softmax_head_and_embedding_dim() -> None:
    model = create_model("xception_tiny", in_chans=6, num_classes=4, head="softmax",
                         embedding_dim=32).eval()
    x = torch.randn(2, 6, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 4)
        assert model.embed(x).shape == (2, 32)
    assert model.head_meta == {"type": "softmax", "s": None, "m": None}
    with pytest.raises(ValueError, match="unknown head"):
        create_model("xception_tiny", in_chans=6, num_classes=4, head="cosface")


@pytest.mark.parametrize(
    ("name", "expected"), [("xception", 20.8e6), ("xception_wide", 35.8e6)]
)
def test_parameter_counts_match_paper(name: str, expected: float) -> None:
    """Backbone parameters at 6 channels, the 1,139-class head excluded (method-notes)."""
    model = create_model(name, in_chans=6, num_classes=1139)
    backbone = count_parameters(model.backbone)
    assert backbone == pytest.approx(expected, rel=0.02)
    # the head adds exactly classes x 2048
    assert count_parameters(model) - backbone == 1139 * 2048
    assert model.num_features == 2048


def test_width_and_middle_blocks_make_a_small_cpu_model() -> None:
    tiny = create_model("xception_tiny", in_chans=6, num_classes=10)
    assert count_parameters(tiny.backbone) < 0.5e6
    thin = create_model("xception", in_chans=6, num_classes=10, width=0.25, middle_blocks=2)
    assert count_parameters(thin.backbone) < count_parameters(
        create_model("xception", in_chans=6, num_classes=10, width=0.5, middle_blocks=2).backbone
    )
    assert thin.spec["kwargs"]["width"] == 0.25  # kept for rebuilding from a checkpoint


def test_any_timm_backbone_by_name() -> None:
    model = create_model("resnet18", in_chans=6, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 6, 64, 64))
        emb = model.embed(torch.randn(2, 6, 64, 64))
    assert out.shape == (2, 5)
    assert emb.shape == (2, 512)
    assert model.backbone.conv1.in_channels == 6
    assert "resnet18" in list_models(include_timm=True, pattern="resnet1*")


def test_unknown_name_is_refused() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'no_such_net'"):
        create_model("no_such_net", in_chans=6, num_classes=3)


def test_register_model_decorator() -> None:
    @register_model(name="_test_micro")
    def micro(in_chans: int = 6) -> torch.nn.Module:
        net = torch.nn.Sequential(torch.nn.Conv2d(in_chans, 8, 3), torch.nn.BatchNorm2d(8))
        net.num_features = 8  # type: ignore[attr-defined]
        return net

    assert "_test_micro" in list_models()
    model = create_model("_test_micro", in_chans=2, num_classes=3)
    assert model(torch.randn(1, 2, 16, 16)).shape == (1, 3)


def test_local_pretrained_init_adapts_first_conv(tmp_path: Path) -> None:
    torch.manual_seed(1)
    # an "ImageNet" RGB model with a 3x3 first conv, saved as a plain torch state dict
    rgb = XceptionBackbone(3, width=0.125, middle_blocks=2, first_kernel=3)
    state = {f"module.{k}": v for k, v in rgb.state_dict().items()}  # DDP-style prefix
    state["fc.weight"] = torch.randn(1000, 256)
    path = tmp_path / "imagenet.pth"
    torch.save(state, path)
    model = create_model("xception_tiny", in_chans=6, num_classes=4, pretrained_file=path)
    w = model.backbone.conv1.weight.detach()  # (8, 6, 7, 7)
    src = rgb.conv1.weight.detach()  # (8, 3, 3, 3)
    expected_centre = src.mean(dim=1, keepdim=True).repeat(1, 6, 1, 1) * 0.5
    assert torch.allclose(w[:, :, 2:5, 2:5], expected_centre)
    assert torch.count_nonzero(w[:, :, 0]) == 0  # the border of the 7x7 kernel is zero
    pointwise = model.backbone.block2.rep[1].pointwise.weight
    assert torch.equal(pointwise, rgb.block2.rep[1].pointwise.weight)
    assert torch.equal(model.backbone.bn4.running_mean, rgb.bn4.running_mean)
    report = model.pretrained_report
    assert report is not None and report["adapted"] == ["conv1.weight"]
    assert "fc.weight" in report["skipped"]


def test_local_pretrained_safetensors_for_timm_model(tmp_path: Path) -> None:
    import timm

    rgb = timm.create_model("resnet18", pretrained=False, in_chans=3)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    model = create_model("resnet18", in_chans=4, num_classes=3, pretrained_file=path)
    src = rgb.conv1.weight.detach()
    expected = src.mean(dim=1, keepdim=True).repeat(1, 4, 1, 1) * 0.75
    assert torch.allclose(model.backbone.conv1.weight, expected)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pretrained_file_with_pickled_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv1.weight": _Evil(marker)}))
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        create_model("xception_tiny", in_chans=6, num_classes=2, pretrained_file=path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="not found"):
        create_model("xception_tiny", in_chans=6, num_classes=2,
                     pretrained_file=tmp_path / "missing.safetensors")


def test_plain_cnn_keeps_a_map_at_64_px() -> None:
    # defect: the tiny Xception's 7x7 stride-2 stem and four stride-2 stages leave 2x2 at
    # 64 px, where nuclei are 4-5 px across; the tiny preset's backbone keeps 8x8
    from deepnoise_engine.model.registry import create_model

    x = torch.zeros(1, 6, 64, 64)
    plain = create_model("plain_cnn", in_chans=6, num_classes=3)
    tiny = create_model("xception_tiny", in_chans=6, num_classes=3)
    assert plain.backbone(x).shape[-2:] == (8, 8)
    assert tiny.backbone(x).shape[-2:] == (2, 2)
    wide = create_model("plain_cnn_wide", in_chans=6, num_classes=3)
    assert wide.num_features > plain.num_features
