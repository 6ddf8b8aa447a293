"""Classifier activations of real and generated images, streamed in batches.

Only activations are accumulated (N x (2048 + 1008) float32 for Inception, 122 MB at
N = 10k); images exist one batch at a time. Real-image activations depend only on the
dataset, split, N and classifier, so they are cached on disk as
`<cache_dir>/real_activations/<dataset>-<H>x<W>x<C>_<split>_<N>_<classifier>.npz`
(characters other than letters, digits, "." and "-" in the dataset name, e.g. the path of
a "folder:/..." source, become "_"; a folder's name ends in its `content_id`, so that
changed files are read anew). The default cache dir, `data.default_cache_dir()`, is
shared by all workdirs; every file in it is keyed by what produced it, so deleting it
only costs recomputation.
"""

import io
import math
import os
import re
import zipfile

from absl import logging
import numpy as np
import tensorflow as tf

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import files
from ssgan_tf import labels as labels_lib
from ssgan_tf import progress
from ssgan_tf.evaluation import classifiers


def stream_activations(classifier, image_batches, num):
  """Runs `classifier` over the first `num` images of `image_batches`.

  Args:
    classifier: a `classifiers.Classifier`.
    image_batches: iterable of `[b, H, W, C]` float32 in [-1, 1].
    num: images to use; the iterable must yield at least that many.

  Returns:
    `{"pool_3": [num, D], "logits": [num, K]}` float32 NumPy arrays.
  """
  chunks = {key: [] for key in classifiers.OUTPUTS}
  seen = 0
  for images in image_batches:
    images = images[:num - seen]
    outputs = classifier(images)
    for key in classifiers.OUTPUTS:
      chunks[key].append(outputs[key].numpy())
    seen += int(images.shape[0])
    if seen == num:
      return {key: np.concatenate(parts) for key, parts in chunks.items()}
  raise errors.DataError(f"needed {num} images but the input ended after {seen}; "
                         "lower evaluation.num_samples.")


def generated_batches(model, num, batch_size, rng, label_probabilities=None):
  """Yields `ceil(num / batch_size)` full batches of `model.generate(z)`, or for a
  conditional model `model.generate(z, labels)` (labels drawn after each batch's z from
  the same `rng`, i.i.d. from `label_probabilities`).

  Args:
    model: has `generate(z)` and `sample_z(num, rng)` (an `ssgan.SSGAN`); a conditional
      one (`num_classes` not None) also `generate(z, labels)`.
    num, batch_size: images wanted, and per generator call.
    rng: the evaluation's own `tf.random.Generator` (not the model's training stream,
      which checkpoints save), so evaluating is reproducible and never perturbs
      training.
    label_probabilities: a conditional model's class mix, `[num_classes]` (None:
      uniform; `labels.probabilities`).
  """
  num_classes = getattr(model, "num_classes", None)
  for _ in range(math.ceil(num / batch_size)):
    z = model.sample_z(batch_size, rng)
    yield (model.generate(z) if num_classes is None else model.generate(
        z, labels_lib.draw_labels(batch_size, num_classes, label_probabilities, rng)))


def real_activations(classifier, source, split, num, batch_size, cache_dir=None):
  """Activations of the first `num` images of `source`'s `split`, cached on disk.

  Args:
    classifier: a `classifiers.Classifier`.
    source: a `data.ImageSource`.
    split: e.g. "test".
    num: number of images.
    batch_size: images per classifier call.
    cache_dir: see the module docstring; None = `data.default_cache_dir()`.

  Returns:
    As `stream_activations`.
  """
  height, width, channels = source.image_shape
  dataset = re.sub(r"[^A-Za-z0-9.-]+", "_", source.name)
  if source.content_id:
    dataset += f"-{source.content_id}"
  path = os.path.join(
      cache_dir or data.default_cache_dir(), "real_activations",
      f"{dataset}-{height}x{width}x{channels}_{split}_{num}_{classifier.name}.npz")
  if tf.io.gfile.exists(path):
    cached = _read_cached(path, num)
    if cached is not None:
      return cached
  images = data.prefetched(source.images(split).take(num).batch(batch_size))
  activations = stream_activations(classifier, progress.progress_bar(
      images, math.ceil(num / batch_size), f"real {split} images", unit="batches"), num)
  buffer = io.BytesIO()  # np.savez seeks, which a GFile opened for writing cannot.
  np.savez(buffer, **activations)
  try:
    files.write_atomically(path, buffer.getvalue())
  except (tf.errors.OpError, OSError) as e:  # A read-only home in a container, say.
    logging.warning("could not cache the real images' activations in %s (%s); the next "
                    "evaluation computes them again (evaluation.cache_dir chooses the "
                    "folder).", path, getattr(e, "message", e))
  return activations


def _read_cached(path, num):
  """The activations cached at `path`; None (with a warning) if the file is damaged (a
  crash or power loss while it was written, say): they are computed again and the file
  replaced."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      with np.load(f) as cached:
        activations = {key: cached[key] for key in classifiers.OUTPUTS}
  except (OSError, ValueError, TypeError, EOFError, KeyError, zipfile.BadZipFile,
          tf.errors.OpError) as e:
    reason = errors.first_line(e)
  else:
    rows = {len(value) for value in activations.values()}
    if rows == {num}:
      return activations
    reason = f"{sorted(rows)} rows, not {num}"
  logging.warning("the cached activations %s cannot be used (%s); computing them again.",
                  path, reason)
  return None
