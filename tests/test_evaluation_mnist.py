"""The offline metric classifier: trained once on the built-in digits, cached, accurate,
and its features tell real digits from noise."""

import time

import numpy as np
import pytest

from ssgan_tf import data
from ssgan_tf.evaluation import activations
from ssgan_tf.evaluation import eval_lib
from ssgan_tf.evaluation import metrics
from ssgan_tf.evaluation import mnist_classifier


@pytest.fixture(scope="module")
def mnist():
  return data.get_source("mnist")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def classifier(cache_dir, mnist):
  start = time.perf_counter()
  trained = mnist_classifier.load_mnist_classifier(cache_dir, mnist)
  print(f"MNIST classifier: trained in {time.perf_counter() - start:.1f} s, {trained.info}")
  return trained


def _activations(classifier, dataset, num):
  return activations.stream_activations(classifier, dataset.batch(250), num)


def test_test_accuracy_is_high(classifier, mnist):
  assert classifier.info["test_accuracy"] > 0.9
  # Measured again, independently of the training code's own evaluation.
  images, labels = next(iter(mnist.images("test", with_labels=True).batch(500)))
  predicted = np.argmax(classifier(images)["logits"], axis=-1)
  assert len(labels) == 500
  assert np.mean(predicted == labels.numpy()) == pytest.approx(
      classifier.info["test_accuracy"], abs=1e-3)


def test_weights_are_cached_under_the_version(classifier, cache_dir, mnist):
  start = time.perf_counter()
  reloaded = eval_lib.get_classifier(None, mnist, cache_dir=cache_dir)  # "mnist" by default.
  assert time.perf_counter() - start < 5  # Loaded, not retrained.
  assert reloaded.name == mnist_classifier.VERSION
  images = next(iter(mnist.images("test").batch(20)))
  np.testing.assert_allclose(reloaded(images)["pool_3"], classifier(images)["pool_3"],
                             rtol=1e-5, atol=1e-5)


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
