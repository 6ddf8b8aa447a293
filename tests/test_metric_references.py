"""FID, KID and IS as metrics.py computes them (TF-GAN's maths) against our own
NumPy/SciPy code and hand-worked closed forms: nothing here calls TF-GAN."""

import numpy as np
import pytest
from scipy import linalg
from scipy import special

from ssgan_tf.evaluation import metrics


# ------------------------------------------------------------------------------- FID

def _reference_fid(a, b):
  """|m_a - m_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^1/2), unbiased covariances (TF-GAN's)."""
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = linalg.sqrtm(cov_a @ cov_b)
  assert np.abs(root.imag).max() < 1e-6 * np.abs(root.real).max()  # A real root exists.
  return float(np.sum((a.mean(0) - b.mean(0)) ** 2)
               + np.trace(cov_a + cov_b - 2 * root.real))


def _with_moments(mean, cov, num=8, seed=0):
  """`num` 2-D points whose sample mean is `mean` and unbiased covariance is `cov`."""
  z = np.random.default_rng(seed).normal(size=(num, 2))
  z -= z.mean(0)
  white = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
  return white @ np.linalg.cholesky(cov).T + mean


@pytest.mark.parametrize("num, dim, rel", [
    (400, 32, 1e-6),
    (60, 100, 1e-4),  # N < D: singular covariances, as in small test runs.
])
def test_fid_matches_scipy_sqrtm(num, dim, rel):
  rng = np.random.default_rng(dim)
  real = rng.normal(size=(num, dim))
  fake = rng.normal(size=(num + 7, dim)) @ rng.normal(size=(dim, dim)) * 0.3 + 0.2
  assert metrics.frechet_distance(real, fake) == pytest.approx(_reference_fid(real, fake),
                                                               rel=rel)


def test_fid_hand_worked_diagonal_gaussians():
  # C1 = diag(1, 4), C2 = diag(9, 16) commute: Tr(C1 + C2 - 2 (C1 C2)^1/2) =
  # (1 - 3)^2 + (2 - 4)^2 = 8. Means (0, 0) and (3, 0): |m1 - m2|^2 = 9. FID = 17.
  set1 = _with_moments([0, 0], np.diag([1.0, 4.0]), seed=1)
  set2 = _with_moments([3, 0], np.diag([9.0, 16.0]), seed=2)
  assert metrics.frechet_distance(set1, set2) == pytest.approx(17.0, rel=1e-9)


def test_fid_hand_worked_rotated_gaussian_against_isotropic():
  # C1 = R diag(4, 9) R^T with R a 30-degree rotation (not diagonal); C2 = I, so
  # (C1 C2)^1/2 = R diag(2, 3) R^T and the trace term is 13 + 2 - 2 * 5 = 5.
  # Means (0, 0) and (1, 2): 5. FID = 10.
  angle = np.pi / 6
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  set1 = _with_moments([0, 0], rotation @ np.diag([4.0, 9.0]) @ rotation.T, seed=3)
  set2 = _with_moments([1, 2], np.eye(2), seed=4)
  assert metrics.frechet_distance(set1, set2) == pytest.approx(10.0, rel=1e-9)


# ------------------------------------------------------------------------------- KID

def _unbiased_mmd2(real, fake):
  """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3: diagonal terms left out of k_rr, k_gg."""
  def kernel(x, y):
    return (x @ y.T / x.shape[1] + 1) ** 3

  def off_diagonal_mean(k):
    return (k.sum() - np.trace(k)) / (len(k) * (len(k) - 1))

  return (off_diagonal_mean(kernel(real, real)) + off_diagonal_mean(kernel(fake, fake))
          - 2 * kernel(real, fake).mean())


def _block_bounds(num, blocks):
  """TF-GAN's split of `num` rows into `blocks` contiguous blocks, the larger ones last."""
  small, plus_one = num // blocks, num % blocks
  sizes = [small] * (blocks - plus_one) + [small + 1] * plus_one
  return np.cumsum([0] + sizes)


def _reference_kid(real, fake, max_block=1024):
  """Mean of the block estimates; std = sample std (Bessel) of blocks / sqrt(blocks)."""
  blocks = -(-max(len(real), len(fake)) // max_block)
  r, g = _block_bounds(len(real), blocks), _block_bounds(len(fake), blocks)
  estimates = np.array([_unbiased_mmd2(real[r[i]:r[i + 1]], fake[g[i]:g[i + 1]])
                        for i in range(blocks)])
  std = estimates.std(ddof=1) / np.sqrt(blocks) if blocks > 1 else None
  return estimates.mean(), std


def test_kid_in_one_block_is_the_unbiased_mmd2():
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(300, 16)), rng.normal(size=(250, 16)) * 1.2 + 0.1
  value, std = metrics.kernel_distance(real, fake)
  assert value == pytest.approx(_unbiased_mmd2(real, fake), rel=1e-9)
  assert value > 0.01 and std is None


def test_kid_with_uneven_blocks_matches_the_block_reference():
  # 1501 real and 1100 fake: two blocks each, of 750 + 751 and 550 + 550 rows.
  rng = np.random.default_rng(6)
  real, fake = rng.normal(size=(1501, 4)), rng.normal(size=(1100, 4)) + 0.3
  value, std = metrics.kernel_distance(real, fake)
  expected_value, expected_std = _reference_kid(real, fake)
  assert value == pytest.approx(expected_value, rel=1e-9)
  assert std == pytest.approx(expected_std, rel=1e-9)
  # Blocks matter: the estimate over all pairs at once differs.
  assert abs(_unbiased_mmd2(real, fake) - value) > 1e-6


# -------------------------------------------------------------------------------- IS

def _reference_is(logits):
  """exp(E_x KL(p(y|x) || p(y))) with p(y) the mean of the softmaxes."""
  p = special.softmax(logits, axis=1)
  marginal = p.mean(0)
  return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))


def test_is_matches_direct_softmax_kl():
  logits = np.random.default_rng(7).normal(size=(500, 20)) * 3
  score = metrics.classifier_score(logits)
  assert score == pytest.approx(_reference_is(logits), rel=1e-9)
  assert 1.5 < score < 20


def test_is_hand_worked_two_classes():
  # Half the samples p(y|x) = (0.8, 0.2), half (0.2, 0.8): p(y) = (1/2, 1/2) and every
  # KL = 0.8 ln 1.6 + 0.2 ln 0.4, so IS = 1.6^0.8 * 0.4^0.2 = 1.2126...
  row = np.log([0.8, 0.2])
  logits = np.stack([row, row[::-1]] * 50)
  assert metrics.classifier_score(logits) == pytest.approx(1.6 ** 0.8 * 0.4 ** 0.2,
                                                           rel=1e-12)
