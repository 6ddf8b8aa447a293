"""The offline metric classifier: a small CNN for 32x32 digits, with weights shipped here.

Inception needs a download; this does not. Its 128-D penultimate layer plays the part of
Inception's `pool_3`, so TF-GAN's functions give a Fréchet distance and a classifier
score on its features: `fmd500_test` ("Fréchet MNIST-classifier distance") and
`mnist_score500`. They are NOT FID/IS and compare only with each other.

A metric is only comparable if its network is fixed, as FID's Inception is. The weights
(`mnist_cnn_v2.weights.h5`, beside this file, 2.2 MB) were trained once by
`train_network` (seed 0, 4 epochs, 2 threads, on a 2-core AMD EPYC; rerun there by
tools/train_mnist_classifier.py it gives bit-identical weights, in a file whose HDF5
metadata, hence SHA-256, differs) and the file is checked against WEIGHTS_SHA256 at every
load. v1 trained them on each machine at first use instead; oneDNN's numerics differ with
the CPU, its ISA cap and the environment of that first use, and so did the classifier:
one generator scored fmd 5.27 and 6.46 under two v1 classifiers from the same machine.
"""

import hashlib
import os
import time

import keras

from ssgan_tf import errors
from ssgan_tf.evaluation import classifiers

# In metric records and cache keys; a new network or new weights need a new name.
VERSION = "mnist_cnn_v2"
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{VERSION}.weights.h5")
WEIGHTS_SHA256 = "ac5d16676f6cc5faf448dae3bbf2170bb6e5decb9ec6de9b325592cfa0e0fc8f"
TEST_ACCURACY = 0.962  # Top-1 on the 500 built-in "test" digits, measured when trained.
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

  How the shipped weights were made (tools/train_mnist_classifier.py); evaluation loads
  them and never trains.

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


def file_sha256(path):
  """The hex SHA-256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def load_mnist_classifier():
  """The MNIST classifier with the shipped weights, as a `classifiers.Classifier`.

  Raises:
    ClassifierUnavailableError: the weights file is missing or not the shipped one
      (e.g. a Git LFS pointer, a truncated copy, or a retrained file).
  """
  if not os.path.exists(WEIGHTS):
    raise errors.ClassifierUnavailableError(
        f"the MNIST classifier's weights {WEIGHTS} are missing; reinstall ssgan_tf "
        "(they ship with the package).")
  found = file_sha256(WEIGHTS)
  if found != WEIGHTS_SHA256:
    raise errors.ClassifierUnavailableError(
        f"{WEIGHTS} has SHA-256 {found[:12]}..., not the shipped {WEIGHTS_SHA256[:12]}...: "
        "the metric would not be comparable; restore the file from the package "
        "(git checkout / reinstall).")
  network = build_network()
  network.load_weights(WEIGHTS)
  return classifiers.Classifier(
      network, name=VERSION, family=FAMILY, channels=1, resolution=RESOLUTION,
      info={"test_accuracy": TEST_ACCURACY, "weights_sha256": WEIGHTS_SHA256})
