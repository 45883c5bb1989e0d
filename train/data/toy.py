"""Toy distributions for the smallest GANs (a 1-D Gaussian, a ring of 2-D Gaussians) and their scores."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from ganrt.errors import DataError


class Gaussian1D(Dataset):
    """Samples of N(mean, std^2); each item is a float32 tensor of shape (1,)."""

    def __init__(self, n: int = 50_000, mean: float = 4.0, std: float = 1.25, seed: int = 0) -> None:
        if n < 1 or std <= 0:
            raise DataError(f"need n >= 1 and std > 0, got n={n}, std={std}")
        self.mean, self.std = float(mean), float(std)
        rng = np.random.default_rng(seed)
        self.samples = torch.from_numpy(rng.normal(self.mean, self.std, size=(n, 1)).astype(np.float32))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.samples[index]


def ring_centers(modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """The (modes, 2) centres equally spaced on a circle, the first on the positive x axis."""
    angles = 2 * np.pi * np.arange(modes) / modes
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


class Ring2D(Dataset):
    """A mixture of `modes` equal-weight isotropic Gaussians on a circle; items of shape (2,)."""

    def __init__(
        self, n: int = 50_000, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0
    ) -> None:
        if n < 1 or modes < 1 or std <= 0:
            raise DataError(f"need n >= 1, modes >= 1, std > 0; got n={n}, modes={modes}, std={std}")
        self.modes, self.radius, self.std = modes, float(radius), float(std)
        self.centers = ring_centers(modes, radius)
        rng = np.random.default_rng(seed)
        self.mode_of = rng.integers(0, modes, size=n)
        points = self.centers[self.mode_of] + rng.normal(0.0, std, size=(n, 2))
        self.samples = torch.from_numpy(points.astype(np.float32))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.samples[index]


_normal_cdf = np.frompyfunc(lambda z: 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))), 1, 1)


def ks_statistic(samples: np.ndarray, mean: float, std: float) -> float:
    """One-sample Kolmogorov-Smirnov statistic sup|F_n - F| of samples against N(mean, std^2)."""
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    cdf = _normal_cdf((x - mean) / std).astype(np.float64)
    # The empirical CDF jumps at each sample: compare F with both sides of every step.
    above = np.arange(1, n + 1) / n - cdf
    below = cdf - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def gaussian_stats(samples: np.ndarray, mean: float, std: float) -> dict:
    """How well samples match N(mean, std^2): moments, their relative errors, KS statistic.

    Non-finite samples (a diverged generator) are counted in ``nonfinite`` and left out of
    the other figures. ``ks_critical_95`` = 1.358 / sqrt(n) is the asymptotic 5% critical
    value: a KS statistic above it rejects "drawn from N(mean, std^2)" at the 5% level.
    ``mean_rel_error`` = |m - mean| / |mean| (nan when mean is 0); ``std_rel_error`` =
    |s - std| / std, with s the sample standard deviation (ddof=1).
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    finite = x[np.isfinite(x)]
    n = finite.size
    if n < 2:
        nan = float("nan")
        return dict(n=n, nonfinite=int(x.size - n), mean=nan, std=nan, ks=nan,
                    ks_critical_95=nan, mean_rel_error=nan, std_rel_error=nan)
    sample_mean = float(finite.mean())
    sample_std = float(finite.std(ddof=1))
    return dict(
        n=n,
        nonfinite=int(x.size - n),
        mean=sample_mean,
        std=sample_std,
        ks=ks_statistic(finite, mean, std),
        ks_critical_95=1.358 / math.sqrt(n),
        mean_rel_error=abs(sample_mean - mean) / abs(mean) if mean != 0 else float("nan"),
        std_rel_error=abs(sample_std - std) / std,
    )


def ring_stats(samples: np.ndarray, centers: np.ndarray, std: float) -> dict:
    """Mode coverage and sample quality of 2-D samples against a mixture of Gaussians.

    Rules, exactly:
    - a sample is *high quality* if its Euclidean distance to the nearest centre is at most
      3 * std (the criterion of Metz et al. 2017, Unrolled GANs, and Srivastava et al. 2017,
      VEEGAN, for this benchmark);
    - ``per_mode`` counts the high-quality samples assigned to each centre (by nearest centre);
    - a mode is *covered* if per_mode[k] >= max(1, ceil(n / (4 * modes))), n counting all
      samples: at least a quarter of the 1/modes share a perfect generator gives it. This
      threshold is ganrt's own choice, stricter than "any sample nearby", so that a collapsed
      generator's few stragglers do not count as coverage.
    Returns n, modes, modes_covered, covered (bool per mode), per_mode, high_quality_fraction,
    and coverage_threshold. Non-finite samples count as low quality.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1, 2)
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    n, modes = len(x), len(centers)
    dist = np.linalg.norm(x[:, None, :] - centers[None, :, :], axis=2)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    nearest = dist.argmin(axis=1)
    high_quality = dist[np.arange(n), nearest] <= 3 * std
    per_mode = np.bincount(nearest[high_quality], minlength=modes)
    threshold = max(1, math.ceil(n / (4 * modes)))
    covered = per_mode >= threshold
    return dict(
        n=n,
        modes=modes,
        modes_covered=int(covered.sum()),
        covered=covered.tolist(),
        per_mode=per_mode.tolist(),
        high_quality_fraction=float(high_quality.mean()) if n else float("nan"),
        coverage_threshold=threshold,
    )
