"""The offline metric classifier: fixed shipped weights, accurate, refused when altered,
reproducible by its tool, and its features tell real digits from noise."""

import json
import os
import subprocess
import sys

import gin
import numpy as np
import pytest

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf.evaluation import activations
from ssgan_tf.evaluation import eval_lib
from ssgan_tf.evaluation import metrics
from ssgan_tf.evaluation import mnist_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def mnist():
  return data.get_source("mnist")


@pytest.fixture(scope="module")
def classifier(mnist):
  return eval_lib.get_classifier(None, mnist)  # "mnist" by default for the built-in digits.


def _activations(classifier, dataset, num):
  return activations.stream_activations(classifier, dataset.batch(250), num)


def test_the_shipped_weights_are_loaded_and_as_accurate_as_recorded(classifier, mnist):
  assert classifier.name == mnist_classifier.VERSION == "mnist_cnn_v2"
  assert classifier.info["weights_sha256"] == mnist_classifier.WEIGHTS_SHA256
  images, labels = next(iter(mnist.images("test", with_labels=True).batch(500)))
  predicted = np.argmax(classifier(images)["logits"], axis=-1)
  assert len(labels) == 500
  accuracy = np.mean(predicted == labels.numpy())
  assert accuracy > 0.95
  assert accuracy == pytest.approx(mnist_classifier.TEST_ACCURACY, abs=1e-3)


@pytest.mark.parametrize("damage", ["missing", "one_byte", "retrained"])
def test_weights_that_are_not_the_shipped_ones_are_refused(damage, tmp_path, monkeypatch):
  path = tmp_path / "mnist_cnn_v2.weights.h5"
  if damage == "one_byte":
    raw = bytearray(open(mnist_classifier.WEIGHTS, "rb").read())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
  elif damage == "retrained":  # A valid weights file, other values.
    mnist_classifier.build_network(seed=1).save_weights(str(path))
  monkeypatch.setattr(mnist_classifier, "WEIGHTS", str(path))
  match = "are missing" if damage == "missing" else "not the shipped"
  with pytest.raises(errors.ClassifierUnavailableError, match=match) as error:
    mnist_classifier.load_mnist_classifier()
  assert "\n" not in str(error.value)


def test_the_tool_trains_a_classifier_and_records_how(tmp_path, mnist):
  output = tmp_path / "cnn.weights.h5"
  tool = [sys.executable, os.path.join(ROOT, "tools", "train_mnist_classifier.py"),
          f"--output={output}"]
  done = subprocess.run(tool, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert done.returncode == 0, done.stderr
  info = json.loads(done.stdout.strip().splitlines()[-1])
  assert info["test_accuracy"] > 0.9 and info["seed"] == 0 and info["cores"] >= 1
  # Reproducing the shipped file bit for bit needs the CPU and environment it was made on.
  assert info["weights_sha256"] == mnist_classifier.file_sha256(output)
  network = mnist_classifier.build_network()
  network.load_weights(str(output))
  images, labels = next(iter(mnist.images("test", with_labels=True).batch(500)))
  predicted = np.argmax(network(images)["logits"], axis=-1)
  assert np.mean(predicted == labels.numpy()) == pytest.approx(info["test_accuracy"], abs=1e-3)
  # It never overwrites.
  again = subprocess.run(tool, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert again.returncode != 0 and "exists" in again.stderr
  assert mnist_classifier.file_sha256(output) == info["weights_sha256"]


def test_features_separate_real_digits_from_noise(classifier, mnist):
  test = _activations(classifier, mnist.images("test"), 500)
  train = _activations(classifier, mnist.images("train"), 500)
  rng = np.random.default_rng(0)
  noise = rng.uniform(-1, 1, size=(500, 32, 32, 1)).astype(np.float32)
  fake = activations.stream_activations(classifier, np.split(noise, 2), 500)
  real_vs_real = metrics.frechet_distance(train["pool_3"], test["pool_3"])
  noise_vs_real = metrics.frechet_distance(fake["pool_3"], test["pool_3"])
  assert real_vs_real * 20 < noise_vs_real
  # Balanced, confidently classified digits score near the 10 classes; noise near 1.
  assert metrics.classifier_score(test["logits"]) > 7
  assert metrics.classifier_score(fake["logits"]) < 3


def test_metric_names_say_what_the_classifier_is(classifier):
  names = {kind: metrics.metric_names(metric, classifier.family, 500, "test")
           for kind, metric in metrics.METRICS.items()}
  assert names == {"fid": ("fmd500_test",), "is": ("mnist_score500",),
                   "kid": ("kmd500_test",),
                   "pr": ("mnist_precision500_test", "mnist_recall500_test")}


def test_it_refuses_colour_data(mnist):
  colour = data.ImageSource("cifar_like", (32, 32, 3), 10)
  with pytest.raises(ValueError, match="32x32x1 digits"):
    mnist_classifier.train_network(colour)


def test_workdirs_from_before_v2_still_evaluate_with_the_shipped_classifier(mnist):
  # Their operative configs bind v1's cache folder.
  with gin.unlock_config():
    gin.parse_config("classifier.cache_dir = '/a/v1/cache'")
  try:
    loaded = eval_lib.get_classifier(None, mnist)
  finally:
    gin.clear_config()
  assert loaded.name == "mnist_cnn_v2"
