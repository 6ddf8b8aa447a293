"""Sample-based metrics over classifier activations: FID, IS and KID computed by TF-GAN's
functions, precision and recall by precision_recall.py (NumPy).

Activations are NumPy arrays `[N, D]` (features, e.g. Inception's `pool_3`) or
`[N, K]` (logits); for FID, IS and KID the functions here only convert them and call
TF-GAN, so the maths is TF-GAN's own (`classifier_metrics.py`).

A metric is chosen by its KIND, a key of METRICS (one entry per metric):
  "fid": Fréchet distance between Gaussians fitted to real and fake features.
  "is":  classifier score exp(E_x KL(p(y|x) || p(y))) on fake logits (Inception score).
  "kid": kernel distance, unbiased MMD^2 with the cubic polynomial kernel.
  "pr":  improved precision and recall (k = 3) on the same features: two numbers, how
         much of G's output looks real and how much of the data G covers.
Each output's NAME states its protocol: its prefix for the classifier's family, the
sample count and, for metrics that use real images, the split: `fid10k_test`, `is10k`,
`kid10k_test`, `precision10k_test`, `recall10k_test`; with the MNIST classifier
`fmd500_test`, `mnist_score500`, `kmd500_test`, `mnist_precision500_test`, ...
"""

from typing import Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf
# Private, but TensorFlow's only switch for its deprecation notices (TF is pinned).
from tensorflow.python.util import deprecation

from ssgan_tf import errors
from ssgan_tf.evaluation import precision_recall as precision_recall_lib
from ssgan_tf.evaluation import tfgan


class Metric(NamedTuple):
  """One registered metric.

  Attributes:
    compute: `(real, fake) -> tuple of floats`, one per output; `real` and `fake` are
      activation dicts (`{"pool_3": [N, D], "logits": [N, K]}` NumPy), `real` None when
      unused.
    uses_real: whether it compares with real images (its names then carry the split).
    prefixes: per classifier family ("inception", "mnist"), the name prefix of each
      output, a tuple as long as `compute`'s.
    on_real: None, or `real -> tuple of floats`: the same outputs computed on the real
      images, the value a perfect generator would reach (the Inception score of the
      data), recorded beside the fakes' as `real_value`.
    min_samples: the fewest images per set it is defined on (2: a covariance needs two).
  """
  compute: Callable[[Optional[dict], dict], tuple]
  uses_real: bool
  prefixes: dict
  on_real: Optional[Callable[[dict], tuple]] = None
  min_samples: int = 2


METRICS = {
    "fid": Metric(lambda real, fake: (frechet_distance(real["pool_3"], fake["pool_3"]),),
                  uses_real=True, prefixes={"inception": ("fid",), "mnist": ("fmd",)}),
    "is": Metric(lambda real, fake: (classifier_score(fake["logits"]),), uses_real=False,
                 prefixes={"inception": ("is",), "mnist": ("mnist_score",)},
                 on_real=lambda real: (classifier_score(real["logits"]),)),
    "kid": Metric(lambda real, fake: kernel_distance(real["pool_3"], fake["pool_3"])[:1],
                  uses_real=True, prefixes={"inception": ("kid",), "mnist": ("kmd",)}),
    "pr": Metric(lambda real, fake: precision_recall_lib.precision_recall(
        real["pool_3"], fake["pool_3"]), uses_real=True,
                 prefixes={"inception": ("precision", "recall"),
                           "mnist": ("mnist_precision", "mnist_recall")},
                 min_samples=precision_recall_lib.K + 1),
}
KINDS = tuple(METRICS)


def get_metrics(kinds):
  """`[(kind, Metric)]` for `kinds`; ConfigError for an unknown kind or none."""
  if isinstance(kinds, str) or not kinds:
    raise errors.ConfigError(f"evaluation.metrics must be a non-empty list or tuple of "
                             f"kinds, e.g. ('fid',); got {kinds!r}; choose from "
                             f"{list(METRICS)}.")
  unknown = sorted(set(kinds) - set(METRICS))
  if unknown:
    raise errors.ConfigError(f"unknown evaluation.metrics {unknown}; "
                             f"choose from {list(METRICS)}.")
  return [(kind, METRICS[kind]) for kind in kinds]


def count_label(num):
  """10000 -> "10k", 50000 -> "50k", 500 -> "500", 2500 -> "2500"."""
  return f"{num // 1000}k" if num % 1000 == 0 else str(num)


def metric_names(metric, family, num, split):
  """The names of a metric's outputs, e.g. (METRICS["fid"], "inception", 10000, "test")
  -> ("fid10k_test",); (METRICS["is"], "inception", 10000, ...) -> ("is10k",)."""
  if family not in metric.prefixes:
    raise errors.ConfigError(f"this metric has no name for classifier family {family!r}; "
                             f"it is defined for {sorted(metric.prefixes)}.")
  suffix = f"{count_label(num)}_{split}" if metric.uses_real else count_label(num)
  return tuple(prefix + suffix for prefix in metric.prefixes[family])


def frechet_distance(real_features, fake_features):
  """FID-style distance between `[N, D]` and `[M, D]` features; a float."""
  value = tfgan.classifier_metrics().frechet_classifier_distance_from_activations(
      _float64(real_features), _float64(fake_features))
  return float(value)


def classifier_score(fake_logits):
  """Inception-score-style classifier score of `[M, K]` logits; a float in [1, K]."""
  return float(tfgan.classifier_metrics().classifier_score_from_logits(_float64(fake_logits)))


def kernel_distance(real_features, fake_features):
  """KID-style `(value, standard_error)` between `[N, D]` and `[M, D]` features.

  TF-GAN estimates the error from blocks of at most 1024 samples; with one block
  (N, M <= 1024) there is no estimate and the error is None.
  """
  # TF-GAN's KID calls tf.map_fn(back_prop=False), which TensorFlow reports as deprecated
  # in seven log lines: not something a user of ours can act on.
  with deprecation.silence():
    value, std = tfgan.classifier_metrics().kernel_classifier_distance_and_std_from_activations(
        _float64(real_features), _float64(fake_features))
  return float(value), (float(std) if np.isfinite(std) else None)


def _float64(array):
  # float64 all the way: the covariance of 2048-D features loses digits in float32.
  return tf.constant(np.asarray(array), tf.float64)
