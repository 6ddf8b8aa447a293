"""Per-dataset evaluation defaults: compare_gan's counts, our split names, 3 fake sets."""

import pytest

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf.evaluation import protocols
from ssgan_tf.evaluation.protocols import Protocol


@pytest.mark.parametrize("name, test_size, expected", [
    ("cifar10", 10_000, Protocol(10_000, "test", 3)),
    ("celeb_a", 19_962, Protocol(10_000, "test", 3)),
    ("lsun_bedroom", 30_330, Protocol(30_000, "test", 3)),
    ("imagenet64", 50_000, Protocol(50_000, "test", 3)),
    ("imagenet128", None, Protocol(50_000, "test", 3)),  # Size unknown: the table's.
    ("celeba_hq128", 3_000, Protocol(3_000, "test", 3)),
    ("mnist", 500, Protocol(500, "test", 3)),
    ("folder:/data/faces", 25_000, Protocol(10_000, "test", 3)),
    ("folder:/data/few", 640, Protocol(640, "test", 3)),
    ("folder:/data/unknown", None, Protocol(10_000, "test", 3)),
])
def test_default_protocols(name, test_size, expected):
  assert protocols.default_protocol(name, test_size) == expected


def test_every_dataset_has_a_protocol_under_its_data_name():
  # A dataset added to data.py without an entry would silently get the folder rule.
  assert set(protocols._TABLE) == set(data.DATASETS) - {"folder"}


def test_the_builtin_mnist_uses_its_whole_test_split():
  mnist = data.get_source("mnist")
  protocol = protocols.default_protocol(mnist.name, mnist.num_examples("test"))
  assert protocol.num_samples == mnist.num_examples("test") == 500


def test_a_partly_prepared_split_is_a_data_error():
  with pytest.raises(errors.DataError, match="has 20000 images but compare_gan's "
                                             "protocol uses 50000.*evaluation.num_samples"):
    protocols.default_protocol("imagenet128", 20_000)


@pytest.mark.parametrize("name, size, error, match", [
    ("folder:/x", 1, errors.DataError, "has 1 images; FID needs at least 2"),
    ("mnist", None, errors.ConfigError, "whole test split; pass its size"),
    ("cifar10", -5, errors.ConfigError, "num_test_examples must be >= 0"),
])
def test_unusable_sizes_are_user_errors(name, size, error, match):
  with pytest.raises(error, match=match):
    protocols.default_protocol(name, size)
