"""The classifiers' input: Inception fed exactly as compare_gan feeds it (TF1 bilinear
to 299x299, (p - 128) / 128), checked through a strict stand-in SavedModel that takes
only 299x299; the MNIST path resized only when needed; the loader's errors."""

import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import mnist_classifier
import inception_standin


@pytest.fixture(scope="module")
def standin_path(tmp_path_factory):
  return inception_standin.save_standin(tmp_path_factory.mktemp("strict_inception"))


@pytest.fixture(scope="module")
def inception(standin_path):
  return classifiers.load_inception(standin_path)


def _tf1_bilinear(images, size):
  """NumPy reference of TF1's resize_bilinear (align_corners=False, no half-pixel
  centers): output pixel i samples input coordinate i * in / out."""
  def axis(n_in):
    src = np.arange(size) * (n_in / size)
    low = np.floor(src).astype(int)
    return low, np.minimum(low + 1, n_in - 1), src - low
  y0, y1, wy = axis(images.shape[1])
  x0, x1, wx = axis(images.shape[2])
  wy, wx = wy[None, :, None, None], wx[None, None, :, None]
  top = images[:, y0][:, :, x0] * (1 - wx) + images[:, y0][:, :, x1] * wx
  bottom = images[:, y1][:, :, x0] * (1 - wx) + images[:, y1][:, :, x1] * wx
  return top * (1 - wy) + bottom * wy


def _grid(pool_3):
  """The 9x9x3 input pixels the stand-in reports, `[B, 9, 9, 3]`."""
  return pool_3[:, 3:].reshape(-1, 9, 9, 3)


def test_the_standin_refuses_anything_but_299(standin_path):
  # What makes the tests below fail if the classifier stops resizing by itself.
  module = tf.saved_model.load(standin_path)
  assert module(tf.zeros([1, 299, 299, 3]))["pool_3"].shape == (1, 1, 1, 246)
  with pytest.raises((ValueError, TypeError)):
    module(tf.zeros([1, 32, 32, 3]))


def test_inception_input_is_tf1_bilinear_of_0_255_pixels_mapped_by_128(inception):
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  fed = _grid(inception(images)["pool_3"].numpy())
  pixels = (images.astype(np.float64) + 1) * 127.5
  expected = (_tf1_bilinear(pixels, 299) - 128) / 128
  index = list(inception_standin.GRID)
  np.testing.assert_allclose(fed, expected[:, index][:, :, index], atol=2e-5)
  # TF2's half-pixel bilinear differs visibly, so the check above tells them apart.
  half_pixel = (tf.image.resize(pixels, [299, 299]).numpy() - 128) / 128
  assert np.abs(fed - half_pixel[:, index][:, :, index]).max() > 0.05


@pytest.mark.parametrize("size", [32, 299])
def test_pixel_mapping_end_points(inception, size):
  # x = -1 is pixel 0 -> (0 - 128) / 128; x = 1 is pixel 255 -> (255 - 128) / 128.
  images = tf.concat([-tf.ones([1, size, size, 3]), tf.ones([1, size, size, 3])], 0)
  means = inception(images)["pool_3"].numpy()[:, :3]
  np.testing.assert_allclose(means, [[-1.0] * 3, [127 / 128] * 3], rtol=0, atol=1e-6)


def test_grey_28x28_digits_are_tiled_then_resized(inception):
  grey = tf.random.stateless_uniform([3, 28, 28, 1], [1, 2], -1.0, 1.0)
  out = inception(grey)
  assert out["pool_3"].shape == (3, 246) and out["logits"].shape == (3, 1008)
  np.testing.assert_array_equal(out["pool_3"], inception(tf.tile(grey, [1, 1, 1, 3]))["pool_3"])


def test_inception_name_says_how_it_is_fed(inception, standin_path):
  # Cache keys of real activations change with the preprocessing.
  assert inception.name.startswith("inception-")
  assert inception.name.endswith(classifiers.INCEPTION_PREPROCESSING)
  assert inception.name == classifiers.load_inception(standin_path).name


def test_mnist_path_resizes_only_other_sizes_with_antialiasing():
  seen = []

  def network(images):
    seen.append(tuple(images.shape[1:]))
    return {"pool_3": tf.reshape(images, [tf.shape(images)[0], -1]),
            "logits": tf.reduce_mean(images, [1, 2])}

  classifier = classifiers.Classifier(network, name="probe", family="test", channels=1,
                                      resolution=32)
  digits = tf.random.stateless_uniform([2, 32, 32, 1], [3, 4], -1.0, 1.0)
  np.testing.assert_array_equal(classifier(digits)["pool_3"], tf.reshape(digits, [2, -1]))
  small = digits[:, :28, :28]
  resized = tf.image.resize(small, [32, 32], antialias=True)
  np.testing.assert_allclose(classifier(small)["pool_3"], tf.reshape(resized, [2, -1]),
                             atol=1e-6)
  assert set(seen) == {(32, 32, 1)}


def test_the_mnist_classifier_maps_32x32_grey_digits_to_its_features():
  # As mnist_classifier.load_mnist_classifier builds it (untrained weights here).
  classifier = classifiers.Classifier(
      mnist_classifier.build_network(), name=mnist_classifier.VERSION,
      family=mnist_classifier.FAMILY, channels=1, resolution=32, info={"a": 1})
  out = classifier(tf.zeros([2, 32, 32, 1]))
  assert out["pool_3"].shape == (2, 128) and out["logits"].shape == (2, 10)


def test_three_channel_images_for_a_grey_classifier_are_a_config_error():
  classifier = classifiers.Classifier(lambda x: {"pool_3": x, "logits": x}, name="grey",
                                      family="test", channels=1)
  with pytest.raises(errors.ConfigError, match="takes 1-channel images; got 3"):
    classifier(tf.zeros([1, 8, 8, 3]))


def test_missing_inception_is_a_classifier_unavailable_error(tmp_path):
  assert issubclass(classifiers.InceptionUnavailableError, errors.ClassifierUnavailableError)
  with pytest.raises(errors.ClassifierUnavailableError, match="holds no saved_model.pb"):
    classifiers.load_inception(str(tmp_path))
