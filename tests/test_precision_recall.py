"""Improved precision and recall (Kynkäänniemi et al. 2019) against a brute-force
NumPy reference, closed cases, and the block-size bound on memory."""

import numpy as np
import pytest

from ssgan_tf import errors
from ssgan_tf.evaluation import precision_recall as pr


def _brute_force(real, fake, k):
  """The paper's definition with full distance matrices and direct differences."""
  def distances(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

  def radii(a):
    d = distances(a, a)
    np.fill_diagonal(d, np.inf)  # Self excluded.
    return np.sort(d, axis=1)[:, k - 1]

  precision = (distances(fake, real) <= radii(real)[None, :]).any(1).mean()
  recall = (distances(real, fake) <= radii(fake)[None, :]).any(1).mean()
  return precision, recall


@pytest.mark.parametrize("k, batch_size", [(3, 16), (1, 7), (5, 1000)])
def test_matches_brute_force_reference(k, batch_size):
  rng = np.random.default_rng(k)
  real = rng.normal(size=(120, 5))
  fake = rng.normal(size=(90, 5)) * 1.3 + 0.4  # Partly overlapping.
  expected = _brute_force(real, fake, k)
  assert 0 < min(expected) and max(expected) < 1  # Not a trivial case.
  assert pr.precision_recall(real, fake, k=k, batch_size=batch_size) == pytest.approx(
      expected, abs=1e-12)


def test_radii_are_kth_neighbour_excluding_self_but_not_duplicates():
  points = np.array([[0.0], [0.0], [1.0], [3.0], [7.0]])  # Index 1 duplicates index 0.
  # k = 2, second-nearest other point: 0 -> its twin (0), then 1: 1; 1 -> 0, 0: 1;
  # 3 -> 1 (2), then 0 (3): 3; 7 -> 3 (4), then 1 (6): 6. Squared.
  np.testing.assert_allclose(pr.kth_neighbour_radii(points, 2, batch_size=2),
                             np.array([1.0, 1.0, 1.0, 3.0, 6.0]) ** 2)


def test_a_sample_on_a_ball_boundary_is_inside():
  # Integers: the distances are exact. k = 1, real radii all 1; fake 4 is exactly 1 from
  # real 3 (inside, "<="); real 3 is exactly fake 4's radius (1) away from it.
  real, fake = np.array([[0.0], [1], [2], [3]]), np.array([[4.0], [5], [6], [10]])
  assert pr.precision_recall(real, fake, k=1, batch_size=3) == (0.25, 0.25)


def test_identical_sets_give_one_one():
  features = np.random.default_rng(0).normal(size=(200, 16))
  assert pr.precision_recall(features, features.copy(), batch_size=64) == (1.0, 1.0)


def test_far_apart_sets_give_zero_zero():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(100, 8))
  assert pr.precision_recall(real, rng.normal(size=(80, 8)) + 100, batch_size=32) == (0, 0)


def _modes(rng, centres, per_mode):
  return np.concatenate([c + rng.normal(size=(per_mode, centres.shape[1])) for c in centres])


def test_fake_reproducing_half_the_real_modes_exactly():
  # Four modes 50 apart (unit spread, ~1 apart within a mode); the fake set is the real
  # samples of the first two modes moved by 1e-3. Each fake is 1e-3 from a real sample
  # whose ball is ~1: precision 1. Each real sample of modes 0, 1 is 1e-3 from a fake
  # one; modes 2, 3 are 50 away from every fake: recall exactly 1/2.
  rng = np.random.default_rng(2)
  real = _modes(rng, 50.0 * np.eye(4, 6), 100)
  fake = real[:200] + 1e-3 * rng.normal(size=(200, 6))
  assert pr.precision_recall(real, fake, k=3, batch_size=64) == (1.0, 0.5)


def test_fake_sampling_half_the_real_modes():
  # Independent draws from two of the four modes. Even a perfect G has precision below
  # 1 with this estimator (a new sample can fall outside every k-NN ball, ~4 % here).
  rng = np.random.default_rng(2)
  centres = 50.0 * np.eye(4, 2)
  precision, recall = pr.precision_recall(_modes(rng, centres, 150),
                                          _modes(rng, centres[:2], 150), k=3)
  assert precision > 0.9
  assert 0.45 < recall <= 0.5  # Never above: the uncovered modes are far away.


def test_memory_is_bounded_by_the_block_size(monkeypatch):
  shapes = []
  original = pr._squared_distances

  def recording(a, b, *args):
    shapes.append((len(a), len(b)))
    return original(a, b, *args)

  monkeypatch.setattr(pr, "_squared_distances", recording)
  rng = np.random.default_rng(3)
  pr.precision_recall(rng.normal(size=(250, 4)), rng.normal(size=(130, 4)), batch_size=64)
  assert max(r * c for r, c in shapes) == 64 * 64
  # Every pair is still compared: 2 radius passes + 2 coverage passes.
  assert sum(r * c for r, c in shapes) == 250 ** 2 + 130 ** 2 + 2 * 250 * 130


@pytest.mark.parametrize("real, fake, k, match", [
    (np.zeros((10, 3)), np.zeros((10, 4)), 3, "differ in size"),
    (np.zeros((10,)), np.zeros((10, 4)), 3, "must be \\[num_samples, dim\\]"),
    (np.zeros((3, 2)), np.zeros((10, 2)), 3, "has 3 samples but k=3"),
    (np.zeros((10, 2)), np.zeros((10, 2)), 0, "k must be >= 1"),
])
def test_bad_inputs_are_config_errors(real, fake, k, match):
  with pytest.raises(errors.ConfigError, match=match):
    pr.precision_recall(real, fake, k=k)
