"""gin_configs/: every file parses through the CLI's parser, binds the run length, builds
its models and optimizers at full size for its dataset's image shape (without reading any
data), and names its own command in its header; each plain-GAN baseline is its SS-GAN
config with alpha = beta = 0 and nothing else changed.
"""

import glob
import os

import gin
import pytest
import tensorflow as tf

from ssgan_tf import data
from ssgan_tf import main
from ssgan_tf import ssgan
from ssgan_tf import train_lib  # noqa: F401  (registers the train.* configurable)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "gin_configs", "*.gin")))
BASELINES = {"gan_cifar10_resnet.gin": "ssgan_cifar10_resnet.gin",
             "quickstart_baseline.gin": "quickstart.gin"}


def _parse(path):
  gin.clear_config()
  main.parse_gin([path], [])


def _image_shape(name):
  """The shape a dataset's images have, known without reading (or preparing) it."""
  if name == "mnist":
    return data.MNIST_SHAPE
  resolution = data.TFDS_DATASETS[name].resolution
  return (resolution, resolution, 3)


def _num_classes(name):
  """A dataset's classes (None: unlabelled), known without reading it."""
  return 10 if name == "mnist" else data.TFDS_DATASETS[name].num_classes


def test_configs_are_found():
  names = {os.path.basename(path) for path in CONFIGS}
  assert {"quickstart.gin", "ssgan_cifar10_resnet.gin"} | set(BASELINES) <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_its_models(path):
  _parse(path)
  try:
    assert gin.query_parameter("train.total_steps") > 0
    image_shape = _image_shape(gin.query_parameter("dataset.name"))
    num_classes = _num_classes(gin.query_parameter("dataset.name"))
    model = ssgan.build_model(tf.distribute.get_strategy(), image_shape,
                              num_classes=num_classes,
                              label_counts=[1] * num_classes if num_classes else None)
    assert model.generate(model.sample_z(2)).shape == (2,) + image_shape
    labels = {"labels": tf.zeros([2], tf.int32)} if model.num_classes else {}
    out = model.discriminator(tf.zeros((2,) + image_shape), **labels)
    assert out["logits"].shape == (2,) and out["rotation_logits"].shape == (2, 4)
    assert model.g_optimizer.iterations.numpy() == 0
  finally:
    gin.clear_config()


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_header_gives_the_command(path):
  with open(path) as f:
    header = f.read().split("\n\n")[0]
  command = f"python -m ssgan_tf.main --gin_file=gin_configs/{os.path.basename(path)} "
  assert command in header
  assert "xpected" in header  # "Expected: ..." (or "expected result").


@pytest.mark.parametrize("baseline, parent", BASELINES.items())
def test_baseline_is_its_ssgan_config_without_rotation_losses(baseline, parent):
  bindings = {}
  for name in (baseline, parent):
    _parse(os.path.join(ROOT, "gin_configs", name))
    bindings[name] = set(gin.config_str().splitlines())
  gin.clear_config()
  assert bindings[baseline] - bindings[parent] == {
      "ssgan.rotation_weight_d = 0.0", "ssgan.rotation_weight_g = 0.0"}
  assert len(bindings[parent] - bindings[baseline]) == 2


def test_the_conditional_quickstart_is_the_quickstart_with_labels_and_no_rotation_losses():
  bindings = {}
  for name in ("quickstart_cond.gin", "quickstart.gin"):
    _parse(os.path.join(ROOT, "gin_configs", name))
    bindings[name] = set(gin.config_str().splitlines())
  gin.clear_config()
  assert bindings["quickstart_cond.gin"] - bindings["quickstart.gin"] == {
      "networks.conditional = True", "ssgan.label_distribution = 'train'",
      "ssgan.rotation_weight_d = 0.0", "ssgan.rotation_weight_g = 0.0"}
