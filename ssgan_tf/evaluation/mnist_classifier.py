"""An offline metric classifier: a small CNN trained once on the built-in MNIST digits.

Inception needs a download; this does not. The CNN is trained on the "train" split of
`data.get_source("mnist")` (4,500 digits, 32x32x1 in [-1, 1]) in about 10-20 s on two CPU
cores, and its weights are cached as `<cache_dir>/mnist_classifier/<VERSION>.weights.h5`
with `<VERSION>.json` (its test accuracy). Its 128-D penultimate layer plays the part of
Inception's `pool_3`, so TF-GAN's functions give a Fréchet distance and a classifier
score on its features: `fmd500_test` ("Fréchet MNIST-classifier distance") and
`mnist_score500`. They are NOT FID/IS and compare only with each other.
"""

import json
import os
import time

import keras

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import workdir
from ssgan_tf.evaluation import activations
from ssgan_tf.evaluation import classifiers

# Bump when the architecture or training changes: the cached weights are keyed by it.
VERSION = "mnist_cnn_v1"
FAMILY = "mnist"  # Metric names for its features: see metrics.METRICS.
RESOLUTION = 32
NUM_CLASSES = 10


def build_network(seed=0):
  """`[B, 32, 32, 1]` in [-1, 1] -> {"pool_3": [B, 128], "logits": [B, 10]} (Keras).

  float32 whatever the global dtype policy (training may set mixed_bfloat16): the
  metric must not depend on how the evaluated model was trained.
  """
  def init(i):
    return keras.initializers.GlorotUniform(seed=seed + i)

  images = keras.Input((RESOLUTION, RESOLUTION, 1), dtype="float32")
  x = images
  for i, width in enumerate((32, 64)):
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                            kernel_initializer=init(i), dtype="float32")(x)
    x = keras.layers.MaxPooling2D(dtype="float32")(x)
  x = keras.layers.Flatten(dtype="float32")(x)
  features = keras.layers.Dense(128, activation="relu", kernel_initializer=init(2),
                                dtype="float32")(x)
  logits = keras.layers.Dense(NUM_CLASSES, kernel_initializer=init(3), dtype="float32")(
      features)
  return keras.Model(images, {"pool_3": features, "logits": logits}, name=VERSION)


def train_network(source, epochs=4, batch_size=64, seed=0):
  """Trains `build_network()` on `source`'s "train" split; returns (network, info).

  Args:
    source: a `data.ImageSource` of 32x32x1 digits with labels 0..9 (built-in "mnist").
    epochs, batch_size, seed: training schedule (Adam 1e-3, cross-entropy).

  Returns:
    The trained network and `{"test_accuracy": top-1 on "test", "train_seconds": ...}`.
  """
  if tuple(source.image_shape) != (RESOLUTION, RESOLUTION, 1):
    raise errors.DataError(f"the MNIST classifier trains on 32x32x1 digits; "
                     f"got {source.name} with shape {source.image_shape}.")
  network = build_network(seed)
  trainer = keras.Model(network.input, network.output["logits"])
  trainer.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
  train = (source.images("train", with_labels=True).cache()
           .shuffle(10_000, seed=seed).batch(batch_size))
  start = time.perf_counter()
  trainer.fit(train, epochs=epochs, shuffle=False, verbose=0)  # Shuffled above.
  seconds = time.perf_counter() - start
  _, accuracy = trainer.evaluate(
      source.images("test", with_labels=True).batch(256), verbose=0)
  return network, {"test_accuracy": float(accuracy), "train_seconds": round(seconds, 1)}


def load_mnist_classifier(cache_dir=None, source=None):
  """The MNIST classifier as a `classifiers.Classifier`, trained on first use.

  Args:
    cache_dir: where the weights live (see activations.py); None = the default.
    source: digits to train on if no weights are cached; None = the built-in "mnist".

  Returns:
    The classifier; its `info` holds the test accuracy measured after training.
  """
  directory = os.path.join(cache_dir or activations.default_cache_dir(), "mnist_classifier")
  weights = os.path.join(directory, f"{VERSION}.weights.h5")
  info_path = os.path.join(directory, f"{VERSION}.json")
  if os.path.exists(weights) and os.path.exists(info_path):
    network = build_network()
    network.load_weights(weights)
    with open(info_path) as f:
      info = json.load(f)
  else:
    network, info = train_network(source or data.get_source("mnist"))
    # The weights first: the info file is what marks the cache complete.
    with workdir.atomic_output(weights) as tmp:
      network.save_weights(tmp)
    workdir.write_atomically(info_path, json.dumps(info))
  return classifiers.Classifier(network, name=VERSION, family=FAMILY, channels=1,
                                resolution=RESOLUTION, info=info)
