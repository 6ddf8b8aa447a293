"""A stand-in for TF-GAN's Inception SavedModel that, unlike it, refuses other sizes.

It takes only `[B, 299, 299, 3]` float32 (its input signature), so a classifier that
forgets to resize fails loudly, and returns TF-GAN's keys: `pool_3` `[B, 1, 1, D]` and
`logits` `[B, K]` (the real module: D = 2048, K = 1008).

pool_3, with `features=None`: the per-channel mean of the input (3 values), then the
input pixels on a 9x9 grid (rows and columns 0, 37, ..., 296; 243 values), so tests can
read back exactly what the network was fed. With `features=D`: tanh of a fixed random
projection of those 246 values to D dimensions, for metric tests that need a small,
well-conditioned D.
"""

import numpy as np
import tensorflow as tf

SIZE = 299
GRID = tuple(range(0, SIZE, 37))  # 9 rows / columns.
RAW_FEATURES = 3 + len(GRID) ** 2 * 3


class StrictInception(tf.Module):
  """`[B, 299, 299, 3]` only -> {"pool_3": [B, 1, 1, D], "logits": [B, K]}."""

  def __init__(self, features=None, logits=1008, seed=0):
    super().__init__()
    rng = np.random.default_rng(seed)
    width = features or RAW_FEATURES
    self.projection = (None if features is None else tf.Variable(
        rng.normal(size=(RAW_FEATURES, features)).astype(np.float32) / 16))
    self.to_logits = tf.Variable(rng.normal(size=(width, logits)).astype(np.float32) / 16)

  @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
  def __call__(self, images):
    grid = tf.gather(tf.gather(images, GRID, axis=1), GRID, axis=2)
    raw = tf.concat([tf.reduce_mean(images, [1, 2]),
                     tf.reshape(grid, [-1, RAW_FEATURES - 3])], axis=1)
    pool = raw if self.projection is None else tf.tanh(raw @ self.projection)
    return {"pool_3": pool[:, None, None, :], "logits": pool @ self.to_logits}


def save_standin(path, **kwargs):
  """Saves `StrictInception(**kwargs)` as a SavedModel at `path`; returns `path`."""
  tf.saved_model.save(StrictInception(**kwargs), str(path))
  return str(path)
