"""The randomised PCA finds the same two leading components as a full SVD."""

from __future__ import annotations

import numpy as np

from deepnoise_engine.qc.layout import pca_2d


def test_randomised_pca_matches_the_exact_components() -> None:
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 64)))[0]
    scales = np.r_[10.0, 5.0, np.full(62, 0.5)]
    x = (rng.normal(size=(3000, 64)) * scales) @ basis.T
    got = pca_2d(x)
    centred = x - x.mean(axis=0)
    exact = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    for j in range(2):  # components are defined up to their sign
        assert abs(np.corrcoef(got[:, j], exact[:, j])[0, 1]) > 0.999
    assert pca_2d(x[:1]).shape == (1, 2)
