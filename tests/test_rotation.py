"""Tests of rotation.py: rot90 copies of the last n images, block-ordered labels."""

import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import rotation


def _batch(b=5, h=6, c=3):
  # Distinct values everywhere, so any wrong transpose / flip / row shows.
  return np.arange(b * h * h * c, dtype=np.float32).reshape(b, h, h, c)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_rotated_copies_match_numpy_rot90_of_last_n(n):
  x = _batch()
  expected = np.concatenate([np.rot90(x[-n:], k, axes=(1, 2)) for k in (1, 2, 3)], axis=0)
  np.testing.assert_array_equal(rotation.rotated_copies(tf.constant(x), n).numpy(), expected)


@pytest.mark.parametrize("n", [1, 3])
def test_with_rotations_keeps_upright_batch_and_appends_rot90_blocks(n):
  x = _batch()
  out = rotation.with_rotations(tf.constant(x), n).numpy()
  assert out.shape == (x.shape[0] + 3 * n,) + x.shape[1:]
  np.testing.assert_array_equal(out[:x.shape[0]], x)
  for k in (1, 2, 3):
    block = out[x.shape[0] + (k - 1) * n:x.shape[0] + k * n]
    np.testing.assert_array_equal(block, np.rot90(x[-n:], k, axes=(1, 2)))


def test_last_4n_rows_are_the_rotation_examples_of_their_labels():
  # The rotation loss reads the last 4n rows against rotation_labels(n): row i must be
  # the upright image rotated by labels[i].
  x, n = _batch(), 2
  rows = rotation.with_rotations(tf.constant(x), n).numpy()[-4 * n:]
  labels = rotation.rotation_labels(n).numpy()
  upright = np.concatenate([x[-n:]] * 4, axis=0)
  for row, k, image in zip(rows, labels, upright):
    np.testing.assert_array_equal(row, np.rot90(image, k))


@pytest.mark.parametrize("n", [1, 3])
def test_rotation_labels_are_block_ordered_int32(n):
  labels = rotation.rotation_labels(n)
  assert labels.dtype == tf.int32
  np.testing.assert_array_equal(labels.numpy(), [0] * n + [1] * n + [2] * n + [3] * n)


def test_n_zero_adds_no_rows():
  x = _batch()
  assert rotation.rotated_copies(tf.constant(x), 0).shape == (0,) + x.shape[1:]
  np.testing.assert_array_equal(rotation.with_rotations(tf.constant(x), 0).numpy(), x)
  assert rotation.rotation_labels(0).shape == (0,)


def test_with_rotations_works_inside_tf_function_with_unknown_batch():
  x = _batch()
  fn = tf.function(lambda images: rotation.with_rotations(images, 2),
                   input_signature=[tf.TensorSpec([None, 6, 6, 3], tf.float32)])
  np.testing.assert_array_equal(fn(tf.constant(x)).numpy(),
                                rotation.with_rotations(tf.constant(x), 2).numpy())


def test_non_square_images_raise_readable_error():
  with pytest.raises(ValueError, match="square"):
    rotation.with_rotations(tf.zeros([2, 4, 6, 3]), 1)


def test_non_batched_images_raise_readable_error():
  with pytest.raises(ValueError, match=r"\[batch, height, width, channels\]"):
    rotation.rotated_copies(tf.zeros([4, 4, 3]), 1)
