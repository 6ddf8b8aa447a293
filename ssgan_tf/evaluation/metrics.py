"""Sample-based metrics over classifier activations, computed by TF-GAN's functions.

Activations are NumPy arrays `[N, D]` (features, e.g. Inception's `pool_3`) or
`[N, K]` (logits); the functions here only convert them and call TF-GAN, so the maths
is TF-GAN's own (`classifier_metrics.py`).

A metric is chosen by its KIND:
  "fid": Fréchet distance between Gaussians fitted to real and fake features.
  "is":  classifier score exp(E_x KL(p(y|x) || p(y))) on fake logits (Inception score).
  "kid": kernel distance, unbiased MMD^2 with the cubic polynomial kernel, with a
         standard-error estimate.
The metric's NAME states its protocol: the classifier's prefix for the kind, the sample
count and, for metrics that use real images, the split: `fid10k_test`, `is10k`,
`kid10k_test`; with the MNIST classifier `fmd500_test`, `mnist_score500`, `kmd500_test`.
"""

import numpy as np
import tensorflow as tf

from ssgan_tf.evaluation import tfgan

KINDS = ("fid", "is", "kid")
# Kinds that compare against real images (their names carry the split).
USES_REAL = ("fid", "kid")


def check_kinds(kinds):
  unknown = sorted(set(kinds) - set(KINDS))
  if unknown or not kinds:
    raise ValueError(f"unknown metrics {unknown or list(kinds)}; choose from {list(KINDS)}.")


def count_label(num):
  """10000 -> "10k", 50000 -> "50k", 500 -> "500", 2500 -> "2500"."""
  return f"{num // 1000}k" if num % 1000 == 0 else str(num)


def metric_name(prefix, kind, num, split):
  """e.g. ("fid", "fid", 10000, "test") -> "fid10k_test"; ("is", "is", ...) -> "is10k"."""
  name = f"{prefix}{count_label(num)}"
  return f"{name}_{split}" if kind in USES_REAL else name


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
  value, std = tfgan.classifier_metrics().kernel_classifier_distance_and_std_from_activations(
      _float64(real_features), _float64(fake_features))
  return float(value), (float(std) if np.isfinite(std) else None)


def _float64(array):
  # float64 all the way: the covariance of 2048-D features loses digits in float32.
  return tf.constant(np.asarray(array), tf.float64)
