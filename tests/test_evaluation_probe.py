"""The linear probe on D's features."""

import types

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf.evaluation import probe
from ssgan_tf.evaluation import records
from ssgan_tf.nets import build_networks


@pytest.fixture(scope="module")
def discriminator():
  _, tiny_d = build_networks((32, 32, 1), architecture="sndcgan",
                             generator_kwargs={"base_channels": 8},
                             discriminator_kwargs={"base_channels": 8})
  return tiny_d


def test_trivially_separable_features_give_top1_one():
  rng = np.random.default_rng(0)

  def features(num):
    labels = rng.integers(0, 10, num)
    # Class k puts 5 on coordinate k; the noise is far too small to blur it.
    return 5 * np.eye(10, 32)[labels] + 0.1 * rng.normal(size=(num, 32)), labels

  assert probe.fit_probe(*features(300), *features(200)) == 1.0


def test_probe_of_a_tiny_discriminator_on_mnist(discriminator):
  mnist = data.get_source("mnist")
  result = probe.linear_probe(discriminator, mnist, num_train=300, num_test=100,
                              batch_size=100)
  assert (result["num_train"], result["num_test"]) == (300, 100)
  # Each of SNDCGAN's 7 conv blocks, and the features the heads read; the best reported.
  assert sorted(result["per_block"]) == [f"block{i}" for i in range(1, 8)] + ["features"]
  assert result["top1"] == max(result["per_block"].values())
  assert result["per_block"][result["block"]] == result["top1"]
  assert len(set(result["per_block"].values())) > 1  # The blocks do differ.
  print(f"probe top-1 of an untrained tiny D: {result['top1']:.3f} ({result['block']})")
  # Even random conv features beat chance (0.1) on digits by a wide margin.
  assert 0.3 < result["top1"] <= 1.0


def test_run_probe_appends_its_record(discriminator, tmp_path):
  restored = types.SimpleNamespace(model=types.SimpleNamespace(discriminator=discriminator),
                                   source=data.get_source("mnist"), step=3,
                                   checkpoint_path="ckpt-3")
  record = probe.run_probe(str(tmp_path), restored, num_train=100, num_test=50)
  assert records.read_records(str(tmp_path)) == [record]
  assert set(records.RECORD_KEYS) <= set(record)
  assert (record["metric"], record["step"], record["num_real"], record["num_train"]) == (
      "probe_top1_test", 3, 50, 100)
  assert 0.0 <= record["value"] <= 1.0
  assert record["value"] == record["per_block"][record["block"]]


class _NoFeatures:
  """A discriminator that must not be probed."""

  def probe_features(self, *args, **kwargs):
    raise AssertionError("probed although the record could not be written")


def test_a_probe_on_an_unwritable_workdir_fails_before_probing(tmp_path):
  (tmp_path / "a_file").write_text("")  # Its child cannot be made, even by root.
  restored = types.SimpleNamespace(model=types.SimpleNamespace(discriminator=_NoFeatures()),
                                   source=data.get_source("mnist"), step=3,
                                   checkpoint_path="ckpt-3")
  with pytest.raises(errors.WorkdirError) as raised:
    probe.run_probe(str(tmp_path / "a_file" / "w"), restored, num_train=100, num_test=50)
  assert str(raised.value).startswith(
      f"cannot append to {tmp_path / 'a_file' / 'w' / 'metrics.jsonl'} (")
  assert "); no probe was run. Make the workdir writable" in str(raised.value)


def test_block_features_are_the_spatial_means_of_the_trunk_blocks(discriminator):
  images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 1)).astype(np.float32)
  features = discriminator.probe_features(images)
  blocks = discriminator.trunk.block_outputs(images)
  assert len(blocks) == 7
  for i, block in enumerate(blocks, start=1):
    np.testing.assert_allclose(features[f"block{i}"], block.numpy().mean(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(features["features"],
                                discriminator(images, training=False)["features"])


def test_one_class_of_training_labels_is_rejected():
  features = np.random.default_rng(0).normal(size=(20, 4))
  with pytest.raises(ValueError, match="at least two classes"):
    probe.fit_probe(features, np.zeros(20), features, np.zeros(20))


def test_a_first_slice_of_one_class_says_how_to_get_more(discriminator, tmp_path):
  for name in ("a/0.png", "a/1.png", "a/2.png", "b/0.png"):
    (tmp_path / name).parent.mkdir(exist_ok=True)
    PIL.Image.new("L", (32, 32), 40 * len(name)).save(tmp_path / name)
  folder = data.get_source("folder", image_dir=str(tmp_path), resolution=32, channels=1)
  with pytest.raises(ValueError) as error:
    probe.linear_probe(discriminator, folder, num_train=3, num_test=4)
  assert str(error.value).splitlines()[0] == (  # gin adds a line naming the configurable.
      f"the probe needs training examples of at least two classes; the first 3 of split "
      f"'train' of folder:{tmp_path} are all of class 0: raise probe.num_train (None: all; "
      "a folder lists its images class by class).")
  assert probe.linear_probe(discriminator, folder, num_test=4)["num_train"] == 4


class _OneClassSource(data.ImageSource):
  """A labelled source whose every image is of class 0."""

  def _examples(self, split):
    return tf.data.Dataset.from_tensor_slices((tf.zeros([6, 32, 32, 1]),
                                               tf.zeros([6], tf.int64)))


def test_data_of_one_class_is_not_told_to_take_more_of_it(discriminator):
  with pytest.raises(ValueError) as error:
    probe.linear_probe(discriminator, _OneClassSource("one_class", (32, 32, 1), 2))
  assert str(error.value).splitlines()[0] == (
      "the probe needs training examples of at least two classes; split 'train' of "
      "one_class is all of class 0: probe it on data with labels of several classes.")


def test_unlabelled_data_is_rejected(discriminator):
  unlabelled = data.ImageSource("unlabelled", (32, 32, 1), None)
  with pytest.raises(ValueError, match="has no labels"):
    probe.linear_probe(discriminator, unlabelled)
