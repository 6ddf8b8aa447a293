"""Improved precision and recall of generated samples (Kynkäänniemi et al., NeurIPS 2019).

Each set of features spans a "manifold": the union of balls around its samples, the
ball around a sample reaching to that sample's k-th nearest neighbour in its own set
(the sample itself excluded; k = 3 in the paper). Precision is the fraction of fake
samples inside the real manifold (how many generated images look real); recall is the
fraction of real samples inside the fake manifold (how much of the data G covers).
Formally, with NN_k(a, A) the k-th nearest neighbour of a in A \\ {a}:
  x in manifold(A)  iff  ||x - a|| <= ||a - NN_k(a, A)||  for some a in A.

Memory: distances are computed in `[batch_size, batch_size]` blocks (squared
Euclidean, float64), so 50k x 50k needs no 50k^2 array; time is O((N + M)^2 D):
N = M = 2k, D = 2048 took 0.75 s on 2 CPU cores, so 10k takes ~20 s and 50k ~8 min.
The paper uses VGG-16 fc2 features; here any `[N, D]` features work (e.g. Inception's
`pool_3`), and the numbers compare only at equal features, N, M and k.
"""

import numpy as np

from ssgan_tf import errors


K = 3  # The neighbourhood size of the paper.


def precision_recall(real_features, fake_features, k=K, batch_size=1000):
  """Improved precision and recall of `fake_features` against `real_features`.

  Args:
    real_features: `[N, D]` features of real images, N > k.
    fake_features: `[M, D]` features of generated images, M > k.
    k: neighbourhood size (>= 1): a sample's ball reaches to its k-th nearest
      neighbour in its own set.
    batch_size: side of the distance blocks (>= 1); peak memory is about
      8 * batch_size * (batch_size + k) bytes besides the inputs.

  Returns:
    `(precision, recall)`, floats in [0, 1].

  Raises:
    ConfigError: the arrays are not 2-D with equal D, a set has <= k samples, or
      k / batch_size are not positive integers.
  """
  errors.check_range("precision_recall k", k, minimum=1, integer=True)
  errors.check_range("precision_recall batch_size", batch_size, minimum=1, integer=True)
  real = _as_features("real_features", real_features, k)
  fake = _as_features("fake_features", fake_features, k)
  if real.shape[1] != fake.shape[1]:
    raise errors.ConfigError(
        f"real and fake features differ in size ({real.shape[1]} vs {fake.shape[1]}); "
        "compute both with the same classifier.")
  real_radii = kth_neighbour_radii(real, k, batch_size)
  fake_radii = kth_neighbour_radii(fake, k, batch_size)
  precision = in_manifold(fake, real, real_radii, batch_size).mean()
  recall = in_manifold(real, fake, fake_radii, batch_size).mean()
  return float(precision), float(recall)


def kth_neighbour_radii(features, k, batch_size):
  """Squared distance of each sample to its k-th nearest other sample.

  Args:
    features: `[N, D]` float64, N > k.
    k, batch_size: as in `precision_recall`.

  Returns:
    `[N]` float64, squared Euclidean distances.
  """
  num = len(features)
  squares = np.einsum("nd,nd->n", features, features)
  radii = np.empty(num)
  for start in range(0, num, batch_size):
    rows = slice(start, min(start + batch_size, num))
    # The k smallest distances seen so far per row, merged block by block.
    nearest = np.full((rows.stop - rows.start, k), np.inf)
    for col_start in range(0, num, batch_size):
      cols = slice(col_start, min(col_start + batch_size, num))
      block = _squared_distances(features[rows], features[cols], squares[rows],
                                 squares[cols])
      # Exclude each sample itself (but not its duplicates, which are neighbours).
      self_rows = np.arange(max(rows.start, cols.start), min(rows.stop, cols.stop))
      block[self_rows - rows.start, self_rows - cols.start] = np.inf
      merged = np.concatenate([nearest, block], axis=1)
      nearest = np.partition(merged, k - 1, axis=1)[:, :k]
    radii[rows] = nearest.max(axis=1)
  return radii


def in_manifold(queries, support, support_radii, batch_size):
  """Whether each query lies in the ball of some support sample.

  Args:
    queries: `[Q, D]` float64.
    support: `[S, D]` float64.
    support_radii: `[S]` squared radii, from `kth_neighbour_radii(support, ...)`.
    batch_size: as in `precision_recall`.

  Returns:
    `[Q]` bool.
  """
  query_squares = np.einsum("nd,nd->n", queries, queries)
  support_squares = np.einsum("nd,nd->n", support, support)
  inside = np.zeros(len(queries), bool)
  for start in range(0, len(queries), batch_size):
    rows = slice(start, start + batch_size)
    for col_start in range(0, len(support), batch_size):
      cols = slice(col_start, col_start + batch_size)
      block = _squared_distances(queries[rows], support[cols], query_squares[rows],
                                 support_squares[cols])
      inside[rows] |= (block <= support_radii[None, cols]).any(axis=1)
  return inside


def _squared_distances(a, b, a_squares, b_squares):
  """`[len(a), len(b)]` squared Euclidean distances, clipped at 0 against round-off."""
  return np.maximum(a_squares[:, None] + b_squares[None, :] - 2.0 * (a @ b.T), 0.0)


def _as_features(name, features, k):
  # float64: the |a|^2 + |b|^2 - 2ab expansion loses digits in float32 for 2048-D.
  array = np.asarray(features, np.float64)
  if array.ndim != 2:
    raise errors.ConfigError(f"{name} must be [num_samples, dim]; got shape {array.shape}.")
  if len(array) <= k:
    raise errors.ConfigError(
        f"{name} has {len(array)} samples but k={k} needs more than k; "
        "use more samples or a smaller k.")
  return array
