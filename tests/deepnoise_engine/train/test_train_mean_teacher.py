"""Mean-teacher pieces: EMA update, alpha schedule, ramp-up, margin, balanced labels."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from deepnoise_engine.train.mean_teacher import (
    alpha_for_epoch,
    arcface_margin,
    consistency_class_scale,
    consistency_weight,
    ema_alpha,
    ema_update,
    softmax_mse,
)

ALPHAS, EPOCHS = [0.5, 0.9, 0.99, 0.999], [1, 10, 20]


def test_alpha_schedule_matches_method_notes() -> None:
    assert alpha_for_epoch(1, ALPHAS, EPOCHS) == 0.5
    assert alpha_for_epoch(2, ALPHAS, EPOCHS) == alpha_for_epoch(10, ALPHAS, EPOCHS) == 0.9
    assert alpha_for_epoch(11, ALPHAS, EPOCHS) == alpha_for_epoch(20, ALPHAS, EPOCHS) == 0.99
    assert alpha_for_epoch(21, ALPHAS, EPOCHS) == alpha_for_epoch(160, ALPHAS, EPOCHS) == 0.999
    # min(1 - 1/(step+1), alpha_e): the first steps copy the student
    assert ema_alpha(0, 50, ALPHAS, EPOCHS) == 0.0
    assert ema_alpha(1, 50, ALPHAS, EPOCHS) == 0.5
    assert ema_alpha(9, 50, ALPHAS, EPOCHS) == pytest.approx(0.9)
    assert ema_alpha(10_000, 50, ALPHAS, EPOCHS) == 0.999
    assert ema_alpha(10_000, 1, ALPHAS, EPOCHS) == 0.5


def test_consistency_rampup_values() -> None:
    assert consistency_weight(0.0) == pytest.approx(100 * math.exp(-5))
    assert consistency_weight(2.5) == pytest.approx(100 * math.exp(-5 * 0.25))
    assert consistency_weight(5.0) == pytest.approx(100.0)
    assert consistency_weight(50.0) == pytest.approx(100.0)
    values = [consistency_weight(e / 4) for e in range(21)]
    assert all(b > a for a, b in itertools.pairwise(values)), "must increase during ramp-up"


def test_ema_update_mixes_parameters_and_buffers() -> None:
    torch.manual_seed(0)
    student, teacher = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), None
    teacher = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    student[1].running_mean.fill_(2.0)
    student[1].num_batches_tracked.fill_(7)
    s0 = [p.detach().clone() for p in student.parameters()]
    t0 = [p.detach().clone() for p in teacher.parameters()]
    ema_update(teacher, student, 0.9)
    for t, a, b in zip(teacher.parameters(), t0, s0, strict=True):
        torch.testing.assert_close(t, 0.9 * a + 0.1 * b)
    torch.testing.assert_close(teacher[1].running_mean, torch.full((2,), 0.2))
    assert int(teacher[1].num_batches_tracked) == 7
    ema_update(teacher, student, 0.0)  # alpha 0 = copy
    for t, s in zip(teacher.state_dict().values(), student.state_dict().values(), strict=True):
        torch.testing.assert_close(t, s)


def test_softmax_mse_is_mean_squared_probability_difference() -> None:
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    p = torch.softmax(a.detach(), 1) - torch.softmax(b, 1)
    assert float(softmax_mse(a, b).detach()) == pytest.approx(float((p**2).mean()))
    softmax_mse(a, b).backward()
    assert a.grad is not None


def test_arcface_margin_matches_the_model_head() -> None:
    from deepnoise_engine.model.arcface import ArcFaceHead

    torch.manual_seed(1)
    head = ArcFaceHead(8, 5, 30.0, 0.5)
    x = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    labels = torch.randint(0, 5, (16,))
    plain = head(x, None)
    torch.testing.assert_close(arcface_margin(plain, labels, 30.0, 0.5), head(x, labels),
                               atol=1e-4, rtol=1e-4)
    # fallback branch: cos <= cos(pi - m) -> s * (cos - m sin(pi - m))
    cos = torch.tensor([[-0.99, 0.5]])
    out = arcface_margin(cos * 30, torch.tensor([0]), 30.0, 0.5)
    assert float(out[0, 0]) == pytest.approx(30 * (-0.99 - 0.5 * math.sin(math.pi - 0.5)), 1e-5)
    assert float(out[0, 1]) == pytest.approx(15.0)


def test_margin_gradient_is_finite_at_cosine_one() -> None:
    # defect: sqrt(clamp_min(0)) had an infinite gradient where cos = +-1 exactly
    logits = torch.tensor([[30.0, 0.0], [-30.0, 0.0]], requires_grad=True)
    out = arcface_margin(logits, torch.tensor([0, 0]), 30.0, 0.1)
    out.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_consistency_scales_with_the_class_count() -> None:
    # the paper's weight holds for K = 1,139; a mean over 165 classes needs 165/1139 of it
    assert consistency_class_scale(1139, 1139) == 1.0
    assert consistency_class_scale(165, 1139) == pytest.approx(165 / 1139)
    assert consistency_class_scale(165, 0) == 1.0


def test_alpha_rescaled_to_short_epochs() -> None:
    # defect: 0.999 with 7-step epochs averages over ~140 epochs; rescaled it averages
    # over the same fraction of an epoch as with the reference's 900-step epochs
    late = 10_000
    plain = ema_alpha(late, 30, ALPHAS, EPOCHS)
    scaled = ema_alpha(late, 30, ALPHAS, EPOCHS, steps_per_epoch=7,
                       reference_steps_per_epoch=900)
    assert plain == 0.999
    assert scaled == pytest.approx(0.999 ** (900 / 7))
    assert 1 / (1 - scaled) < 2 * 7  # its memory is now about one epoch
