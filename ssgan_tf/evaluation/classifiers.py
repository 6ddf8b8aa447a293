"""Frozen classifiers whose activations the metrics compare: Inception, from TF-Hub.

A `Classifier` maps images `[B, H, W, C]` float32 in [-1, 1] to
`{"pool_3": [B, D] features, "logits": [B, K]}` float32, the interface of TF-GAN's
Inception module (`https://tfhub.dev/tensorflow/tfgan/eval/inception/1`: 2048-D
`pool_3`, 1008 logits). The same interface wraps the project's MNIST classifier
(mnist_classifier.py), which gets its images antialias-resized to 32x32 when needed.

Inception input, exactly as compare_gan feeds it (`eval_utils.py:165-175`:
`tfgan.eval.preprocess_image` mapped over images in [0, 255]; compare_gan pins
tensorflow-gan 0.0.0.dev0, whose `classifier_metrics.py:109-140` casts to float32,
resizes with TF1's `tf.image.resize_bilinear` and then maps (p - 128) / 128). From our
x in [-1, 1]:
  p = (x + 1) * 127.5                   compare_gan's G output in [0, 1] times 255
  r = TF1 bilinear resize of p to 299x299: align_corners=False,
      half_pixel_centers=False, no antialiasing (source pixel = output pixel * in / out)
  inception input = (r - 128) / 128     in [-1, 127/128]: x = -1 -> -1, x = 1 -> 0.9921875
Later TF-GAN versions (>= Sep 2019) skip the (p - 128) / 128 for float input and assume
[-1, 1]; fed compare_gan's [0, 255] floats that would be a different metric, so the
dev0 behaviour above is the reference. The TF-Hub module resizes inside as well; at
299x299 that resize is the identity, so the explicit one decides.

Inception is loaded once per evaluation (not per batch), from a local copy of that
SavedModel (`--inception_path`) or through tensorflow_hub's cache, `$TFHUB_CACHE_DIR/<sha1
of the handle URL>/` (default `<tmp>/tfhub_modules`). Without either it fails at once unless
downloads are allowed: tfhub.dev handles now redirect to Kaggle, and an offline download
does not always fail fast.

TF-GAN's own `classifier_fn_from_tfhub` cannot be used: it flattens with
`tf.compat.v1.layers.flatten`, which raises under Keras 3, and it reloads the module on
every call.
"""

import hashlib
import os

import tensorflow as tf
import tensorflow_hub as hub

from ssgan_tf import errors

INCEPTION_TFHUB = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_FAMILY = "inception"
OUTPUTS = ("pool_3", "logits")
INCEPTION_RESOLUTION = 299
# In the classifier's name, hence in cache keys: activations computed before the
# explicit resize (module-internal resize of [-1, 1] input) are not reused.
INCEPTION_PREPROCESSING = "tf1bilinear299"
# Slack for float round-off in data pipelines; [0, 255] inputs still fail loudly.
_RANGE_TOLERANCE = 1e-3


class InceptionUnavailableError(errors.ClassifierUnavailableError):
  """Inception cannot be loaded here; the message says how to provide it."""


def inception_preprocess(images):
  """compare_gan's Inception input from our images (see the module docstring).

  Args:
    images: `[B, H, W, 3]` float32 in [-1, 1], any H, W.

  Returns:
    `[B, 299, 299, 3]` float32 in [-1, 127/128]: TF1 bilinear resize of
    p = (x + 1) * 127.5, then (p - 128) / 128.
  """
  pixels = (tf.cast(images, tf.float32) + 1.0) * 127.5
  # The raw op, not tf.image.resize: TF2's bilinear samples at half-pixel centers,
  # which moves every sample by almost half an input pixel when upsampling 32 -> 299.
  resized = tf.raw_ops.ResizeBilinear(
      images=pixels, size=[INCEPTION_RESOLUTION] * 2, align_corners=False,
      half_pixel_centers=False)
  return (resized - 128.0) / 128.0


class Classifier:
  """A frozen network as the metrics see it.

  Calling it: images `[B, H, W, C]` float32 in [-1, 1] -> dict of float32
  `pool_3` `[B, D]` and `logits` `[B, K]` (flattened). Grey images (C = 1) are tiled
  to RGB for 3-channel networks; then `preprocess` makes the network's input, or,
  without one, images are resized to `resolution` (antialiased) if their size differs.

  Attributes:
    name: identifies the weights; goes into metric records and cache file names.
    family: what kind of network it is ("inception", "mnist"); metric names depend on
      it (metrics.METRICS), the weights' version does not.
    channels: image channels the network takes (1 or 3).
    resolution: side of the network's input in pixels, or None (any size).
    info: facts about the weights worth reporting (e.g. a test accuracy), a dict.
    preprocess: None, or a function `[B, H, W, channels]` float32 in [-1, 1] -> the
      network's input (e.g. `inception_preprocess`).
  """

  def __init__(self, network, *, name, family, channels=3, resolution=None, info=None,
               preprocess=None):
    self.network, self.name, self.family = network, name, family
    self.channels, self.resolution, self.info = channels, resolution, info or {}
    self.preprocess = preprocess
    self._run = tf.function(self._features, autograph=False)

  def __call__(self, images):
    return self._run(images)

  def _features(self, images):
    tf.debugging.assert_less_equal(
        tf.reduce_max(tf.abs(images)), 1.0 + _RANGE_TOLERANCE,
        message=f"images for classifier {self.name} must be in [-1, 1]")
    channels = images.shape[-1]
    if channels == 1 and self.channels == 3:
      images = tf.tile(images, [1, 1, 1, 3])
    elif channels != self.channels:
      raise errors.ConfigError(
          f"classifier {self.name} takes {self.channels}-channel images; got {channels} "
          f"channels; evaluate with a {self.channels}-channel dataset or another classifier.")
    if self.preprocess is not None:
      images = self.preprocess(images)
    elif self.resolution and tuple(images.shape[1:3]) != (self.resolution,) * 2:
      images = tf.image.resize(images, [self.resolution] * 2, antialias=True)
    outputs = self.network(images)
    batch = tf.shape(images)[0]
    return {key: tf.reshape(tf.cast(outputs[key], tf.float32), [batch, -1])
            for key in OUTPUTS}


def hub_cache_path(handle=INCEPTION_TFHUB):
  """Where tensorflow_hub caches `handle`: `$TFHUB_CACHE_DIR/<sha1(handle)>`."""
  cache_dir = hub.resolver.tfhub_cache_dir(use_temp=True)
  return os.path.join(cache_dir, hashlib.sha1(handle.encode("utf8")).hexdigest())


def load_inception(path=None, allow_download=False):
  """TF-GAN's Inception as a `Classifier` fed as compare_gan feeds it (loaded here,
  once; the caller keeps it).

  Args:
    path: a local copy of the SavedModel behind INCEPTION_TFHUB (the directory holding
      `saved_model.pb`); None resolves INCEPTION_TFHUB through tensorflow_hub's cache.
    allow_download: with no path and an empty cache, let tensorflow_hub download it.

  Raises:
    InceptionUnavailableError: neither the path nor the cache holds the SavedModel (and
      downloading is off or fails); the message names `--inception_path` and
      TFHUB_CACHE_DIR.
  """
  fix = (f"pass --inception_path=<a local copy of the SavedModel at {INCEPTION_TFHUB}> "
         f"or set TFHUB_CACHE_DIR to a TF-Hub cache holding it")
  if path:
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
      raise InceptionUnavailableError(
          f"--inception_path={path} holds no saved_model.pb; {fix}.")
  else:
    path = hub_cache_path()
    if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
      if not allow_download:
        raise InceptionUnavailableError(
            f"Inception is not available offline (no --inception_path, and the TF-Hub "
            f"cache has no {path}); {fix}, or pass --allow_download (needs network; gin: "
            "classifier.allow_download=True).")
      try:
        path = hub.resolve(INCEPTION_TFHUB)
      except OSError as e:  # urllib's URLError when offline.
        raise InceptionUnavailableError(
            f"could not download {INCEPTION_TFHUB} ({e}); {fix}.") from e
  module = hub.load(path)
  return Classifier(module, name=f"inception-{_fingerprint(path)}-{INCEPTION_PREPROCESSING}",
                    family=INCEPTION_FAMILY, channels=3,
                    resolution=INCEPTION_RESOLUTION, preprocess=inception_preprocess)


def _fingerprint(path):
  """12 hex digits of the graph's sha1: equal for the cached and a copied module."""
  with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
    return hashlib.sha1(f.read()).hexdigest()[:12]
