"""ArcFace logits against values computed by hand from known angles (paper eq. 4)."""

from __future__ import annotations

import math

import pytest
import torch

from deepnoise_engine.model.arcface import ArcFaceHead, arcface_logits

torch.set_num_threads(1)

S, M = 30.0, 0.1


def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _toy_head(scale_w: float = 1.0) -> ArcFaceHead:
    """2-D head with class 0 at 60 degrees, class 1 at 179 degrees, class 2 at -90 degrees."""
    head = ArcFaceHead(2, 3, s=S, m=M)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([_unit(60), _unit(179), _unit(-90)]) * scale_w)
    return head


def test_target_gets_angular_margin_and_others_plain_cosine() -> None:
    head = _toy_head(scale_w=2.5)  # class vectors need not be unit length
    x = torch.tensor([[3.0, 0.0]])  # angle 0, norm 3: normalised inside
    out = head(x, torch.tensor([0]))[0]
    assert out[0].item() == pytest.approx(S * math.cos(math.radians(60) + M), abs=1e-4)
    assert out[1].item() == pytest.approx(S * math.cos(math.radians(179)), abs=1e-4)
    assert out[2].item() == pytest.approx(0.0, abs=1e-4)  # 90 degrees away


def test_fallback_when_theta_plus_margin_passes_pi() -> None:
    # theta = 179 degrees > pi - m (174.3 degrees): s * (cos - m * sin(pi - m))
    head = _toy_head()
    out = head(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))[0]
    expected = S * (math.cos(math.radians(179)) - M * math.sin(math.pi - M))
    assert out[1].item() == pytest.approx(expected, abs=1e-4)
    # and it is NOT cos(theta + m), which would wrap around past pi and increase
    assert out[1].item() != pytest.approx(S * math.cos(math.radians(179) + M), abs=1e-3)
    assert out[0].item() == pytest.approx(S * math.cos(math.radians(60)), abs=1e-4)


def test_no_labels_and_negative_labels_mean_no_margin() -> None:
    head = _toy_head()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    plain = head(x)
    assert torch.allclose(plain, S * head.cosine(x))
    mixed = head(x, torch.tensor([-1, 0]))
    assert torch.allclose(mixed[0], plain[0])  # unlabelled row: unchanged
    assert mixed[1, 0] < plain[1, 0]  # labelled row: target lowered by the margin
    assert torch.allclose(mixed[1, 1:], plain[1, 1:])


def test_margin_zero_is_scaled_cosine_and_function_matches_module() -> None:
    cos = torch.tensor([[0.5, -0.2, 0.9]])
    assert torch.allclose(arcface_logits(cos, torch.tensor([2]), S, 0.0), S * cos)
    got = arcface_logits(cos, torch.tensor([2]), S, M)
    assert got[0, 2].item() == pytest.approx(S * math.cos(math.acos(0.9) + M), abs=1e-4)


def test_weight_init_xavier_normal_shape_and_bad_settings() -> None:
    head = ArcFaceHead(512, 100)
    assert head.weight.shape == (100, 512)
    expected_std = math.sqrt(2.0 / (512 + 100))
    assert head.weight.std().item() == pytest.approx(expected_std, rel=0.1)
    with pytest.raises(ValueError, match="margin"):
        ArcFaceHead(8, 3, m=2.0)


def test_cosines_stay_float32_under_autocast() -> None:
    head = _toy_head()
    x = torch.tensor([[1.0, 0.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cos = head.cosine(x)
        out = head(x, torch.tensor([0]))
    assert cos.dtype == torch.float32 and out.dtype == torch.float32
    assert out[0, 0].item() == pytest.approx(S * math.cos(math.radians(60) + M), abs=1e-4)


def test_gradient_is_finite_at_cosine_one() -> None:
    head = _toy_head()
    x = torch.tensor([_unit(60)], requires_grad=True)  # exactly on the class-0 centre
    out = head(x, torch.tensor([0]))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert out[0, 0].item() == pytest.approx(S * math.cos(M), abs=1e-3)
