"""The metric maths (TF-GAN's functions through the shim): closed forms and the
registry of metric names (test_metric_references.py: against NumPy/SciPy references)."""

import re

import numpy as np
import pytest

from ssgan_tf import errors
from ssgan_tf.evaluation import metrics
from ssgan_tf.evaluation import precision_recall


def test_frechet_distance_of_a_set_with_itself_is_zero():
  features = np.random.default_rng(1).normal(size=(200, 32)).astype(np.float32)
  assert abs(metrics.frechet_distance(features, features)) < 1e-6


def test_frechet_distance_hand_worked_2d():
  # Set 1: the four points (+-a, +-b), a = sqrt(3), b = 2 sqrt(3). Mean 0; the unbiased
  # covariance divides by n - 1 = 3: var_x = 4 a^2 / 3 = 4, var_y = 4 b^2 / 3 = 16,
  # cov_xy = sum(x y) / 3 = 0. Set 2: (+-sqrt(3)/2, +-sqrt(3)) shifted by (3, 4):
  # variances 1 and 4, mean (3, 4). Diagonal covariances commute, so
  # Tr(C1 + C2 - 2 (C1 C2)^1/2) = sum_i (sqrt(c1_i) - sqrt(c2_i))^2 = (2-1)^2 + (4-2)^2 = 5,
  # and |m1 - m2|^2 = 3^2 + 4^2 = 25: the distance is 30.
  signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], np.float64)
  set1 = signs * [np.sqrt(3), 2 * np.sqrt(3)]
  set2 = signs * [np.sqrt(3) / 2, np.sqrt(3)] + [3, 4]
  assert metrics.frechet_distance(set1, set2) == pytest.approx(30.0, abs=1e-9)


def test_classifier_score_closed_forms():
  one_hot = 50.0 * np.eye(10)  # Confident predictions, p(y|x) ~ one-hot.
  # Every class equally often: p(y) uniform, KL = log 10 for each sample -> score 10.
  assert metrics.classifier_score(np.tile(one_hot, (20, 1))) == pytest.approx(10, rel=1e-6)
  # Always the same class: p(y|x) = p(y), KL = 0 -> score 1.
  assert metrics.classifier_score(np.tile(one_hot[3], (50, 1))) == pytest.approx(1, rel=1e-6)


def test_kernel_distance_has_an_error_estimate_with_several_blocks():
  rng = np.random.default_rng(3)
  value, std = metrics.kernel_distance(rng.normal(size=(1100, 4)), rng.normal(size=(1100, 4)))
  assert abs(value) < 0.05 and 0 < std < 0.05


@pytest.mark.parametrize("kind, family, num, names", [
    ("fid", "inception", 10000, ("fid10k_test",)), ("is", "inception", 10000, ("is10k",)),
    ("kid", "inception", 50000, ("kid50k_test",)), ("fid", "mnist", 500, ("fmd500_test",)),
    ("is", "mnist", 500, ("mnist_score500",)), ("fid", "inception", 2500, ("fid2500_test",)),
    ("pr", "inception", 10000, ("precision10k_test", "recall10k_test")),
    ("pr", "mnist", 500, ("mnist_precision500_test", "mnist_recall500_test"))])
def test_metric_names_state_sample_count_and_split(kind, family, num, names):
  assert metrics.metric_names(metrics.METRICS[kind], family, num, "test") == names


def test_unknown_metric_kind_is_rejected():
  with pytest.raises(errors.ConfigError, match=r"unknown evaluation.metrics \['precisionn'\]; "
                     r"choose from \['fid', 'is', 'kid', 'pr'\]"):
    metrics.get_metrics(("fid", "precisionn"))


@pytest.mark.parametrize("kinds", ["fid", (), []])
def test_metrics_given_as_one_string_or_none_are_named_as_given(kinds):
  # A string was split into letters: "unknown evaluation.metrics ['d', 'f', 'i']".
  with pytest.raises(errors.ConfigError, match=(
      rf"evaluation.metrics must be a non-empty list or tuple of kinds, e.g. \('fid',\); "
      rf"got {re.escape(repr(kinds))}; choose from")):
    metrics.get_metrics(kinds)


def test_a_metric_has_no_name_for_an_unknown_classifier_family():
  with pytest.raises(errors.ConfigError, match="no name for classifier family 'resnet'"):
    metrics.metric_names(metrics.METRICS["fid"], "resnet", 100, "test")


def test_registry_entries_compute_what_their_names_say():
  rng = np.random.default_rng(0)
  real = {"pool_3": rng.normal(size=(64, 3)), "logits": rng.normal(size=(64, 5))}
  fake = {"pool_3": rng.normal(1.0, size=(64, 3)), "logits": rng.normal(size=(64, 5))}
  assert metrics.METRICS["fid"].compute(real, fake) == (
      metrics.frechet_distance(real["pool_3"], fake["pool_3"]),)
  assert metrics.METRICS["is"].compute(None, fake) == (
      metrics.classifier_score(fake["logits"]),)
  assert metrics.METRICS["kid"].compute(real, fake) == (
      metrics.kernel_distance(real["pool_3"], fake["pool_3"])[0],)
  assert metrics.METRICS["pr"].compute(real, fake) == precision_recall.precision_recall(
      real["pool_3"], fake["pool_3"], k=3)
  assert [kind for kind, m in metrics.METRICS.items() if m.uses_real] == ["fid", "kid", "pr"]
  for metric in metrics.METRICS.values():  # One name per output, for every family.
    assert {len(p) for p in metric.prefixes.values()} == {len(metric.compute(real, fake))}
