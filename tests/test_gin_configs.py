"""gin_configs/: every file parses through the CLI's parser (its `include "base.gin"`
found next to it whatever the working directory and whatever was parsed before), binds
the run length, builds its models and optimizers at full size for its dataset's image
shape (without reading any data; configs that build the same model share one build),
and names its own command, the paper's number and the metric in its header; within a
dataset folder the arms differ only by what makes the arm (the baselines: alpha = beta =
0; sBN: G's normalisation).

(tests/test_every_config.py runs every config end to end at tiny widths.)
"""

import glob
import os
import re

import gin
import pytest
import tensorflow as tf

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import gin_files
from ssgan_tf import ssgan
from ssgan_tf import train_lib  # noqa: F401  (registers the train.* configurable)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ROOT = os.path.join(ROOT, "gin_configs")
ALL_FILES = sorted(glob.glob(os.path.join(CONFIG_ROOT, "**", "*.gin"), recursive=True))
CONFIGS = [p for p in ALL_FILES if os.path.basename(p) != "base.gin"]
BASES = [p for p in ALL_FILES if os.path.basename(p) == "base.gin"]
TABLE1_DATASETS = ("cifar10", "imagenet128", "lsun_bedroom", "celeba_hq128")
# The conditional arms: the GAN arm with labels.
COND = {"cifar10": {"networks.conditional = True", "ssgan.label_distribution = 'train'"},
        "imagenet128": {"networks.conditional = True", "ssgan.label_distribution = 'uniform'"}}
# (arm, its reference in the same folder, the bindings that tell them apart).
ROTATION_OFF = {"ssgan.rotation_weight_d = 0.0", "ssgan.rotation_weight_g = 0.0"}
ROTATION_ON = {"ssgan.rotation_weight_d = 1.0", "ssgan.rotation_weight_g = 0.2"}
ARM_PAIRS = [(f"{d}/gan.gin", f"{d}/ssgan.gin", ROTATION_OFF, ROTATION_ON)
             for d in TABLE1_DATASETS] + [
    (f"{d}/ssgan_sbn.gin", f"{d}/ssgan.gin",
     {"networks.generator_normalization = 'self_modulated'"}, set())
    for d in TABLE1_DATASETS] + [
    ("quickstart_baseline.gin", "quickstart.gin", ROTATION_OFF, ROTATION_ON),
    ("quickstart_cond.gin", "quickstart.gin", ROTATION_OFF | {
        "networks.conditional = True", "ssgan.label_distribution = 'train'",
        "networks.generator_normalization = 'batch_norm'"},
     ROTATION_ON | {"networks.generator_normalization = 'self_modulated'"})] + [
    (f"{d}/cond_gan.gin", f"{d}/gan.gin", COND[d], set()) for d in COND]


def _name(path):
  return os.path.relpath(path, CONFIG_ROOT)


def _parse(path):
  gin.clear_config()
  gin_files.parse([path], [])


def _bindings(name):
  _parse(os.path.join(CONFIG_ROOT, name))
  try:
    return set(gin.config_str().splitlines())
  finally:
    gin.clear_config()


def _image_shape(name):
  """The shape a dataset's images have, known without reading (or preparing) it."""
  if name == "mnist":
    return data.MNIST_SHAPE
  resolution = data.TFDS_DATASETS[name].resolution
  return (resolution, resolution, 3)


def _num_classes(name):
  """A dataset's classes (None: unlabelled), known without reading it."""
  return 10 if name == "mnist" else data.TFDS_DATASETS[name].num_classes


def test_every_table1_cell_has_a_config():
  names = {_name(p) for p in CONFIGS}
  for dataset in TABLE1_DATASETS:
    assert dataset in data.TFDS_DATASETS
    assert f"{dataset}/base.gin" in {_name(p) for p in BASES}
    assert {f"{dataset}/{arm}.gin" for arm in ("gan", "ssgan", "ssgan_sbn")} <= names
  assert {"imagenet128/ssgan_sbn_biggan.gin", "quickstart.gin",
          "quickstart_baseline.gin"} <= names


# Bindings that decide what ssgan.build_model builds; configs equal in these and in the
# image shape (e.g. the 128-px arms of three datasets, ImageNet's 1,000 classes unused by
# an unconditional model) build the same model, built once.
MODEL_KEY_PREFIXES = ("networks.", "ssgan.")
_BUILT = {}


def _build(image_shape, num_classes):
  """{generated image shape, D output shapes, G optimizer step} of the gin config's model
  at `image_shape` (conditional: with `num_classes`), built once per distinct model."""
  lines = tuple(sorted(
      line for line in gin.config_str().splitlines() if line.startswith(MODEL_KEY_PREFIXES)
      and not line.startswith("ssgan.rotation_weight")))
  # Only a conditional model uses the data's classes (build_ssgan).
  key = (image_shape, num_classes if "networks.conditional = True" in lines else None, lines)
  if key not in _BUILT:
    model = ssgan.build_model(tf.distribute.get_strategy(), image_shape,
                              num_classes=num_classes,
                              label_counts=[1] * num_classes if num_classes else None)
    labels = {"labels": tf.zeros([2], tf.int32)} if model.num_classes else {}
    out = model.discriminator(tf.zeros((2,) + image_shape), **labels)
    _BUILT[key] = {"generated": tuple(model.generate(model.sample_z(2)).shape),
                   "logits": tuple(out["logits"].shape),
                   "rotation_logits": tuple(out["rotation_logits"].shape),
                   "g_step": int(model.g_optimizer.iterations.numpy())}
  return _BUILT[key]


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_builds_its_models(path):
  _parse(path)
  try:
    assert gin.query_parameter("train.total_steps") > 0
    image_shape = _image_shape(gin.query_parameter("dataset.name"))
    built = _build(image_shape, _num_classes(gin.query_parameter("dataset.name")))
  finally:
    gin.clear_config()
  assert built == {"generated": (2,) + image_shape, "logits": (2,), "rotation_logits": (2, 4),
                   "g_step": 0}


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_header_gives_the_command_the_papers_number_and_the_metric(path):
  with open(path) as f:
    header = f.read().split("\n\n")[0]
  command = f"python -m ssgan_tf.main --gin_file=gin_configs/{_name(path)} "
  assert command in header
  assert "Hardware" in header and "xpected" in header  # "Expected:", "expected result"
  if not _name(path).startswith("quickstart"):
    # A metric name of evaluation/protocols.py's counts, e.g. fid10k_test, and whether
    # the paper's number is verified or recalled.
    assert re.search(r"\bfid(10k|50k|30k|3k)_test(_ema)?\b", header), header
    assert re.search(r"verified|recalled|confirmed", header), header


@pytest.mark.parametrize("path", BASES, ids=_name)
def test_base_is_included_by_every_arm_beside_it(path):
  folder = os.path.dirname(path)
  arms = [p for p in CONFIGS if os.path.dirname(p) == folder]
  assert len(arms) >= 3
  for arm in arms:
    with open(arm) as f:
      statements = [line for line in f if line.strip() and not line.startswith("#")]
    assert statements[0].strip() == 'include "base.gin"', arm


@pytest.mark.parametrize("arm, reference, only_in_arm, only_in_reference", ARM_PAIRS,
                         ids=[pair[0] for pair in ARM_PAIRS])
def test_arms_differ_only_by_what_makes_the_arm(arm, reference, only_in_arm,
                                                only_in_reference):
  arm_bindings, reference_bindings = _bindings(arm), _bindings(reference)
  assert arm_bindings - reference_bindings == only_in_arm
  assert reference_bindings - arm_bindings == only_in_reference


def test_includes_are_found_next_to_the_file_from_any_working_directory(tmp_path,
                                                                        monkeypatch):
  # A decoy base.gin in the working directory, and another folder's configs parsed
  # first (gin's search path is process-wide): each file still includes its own base.
  (tmp_path / "base.gin").write_text('dataset.name = "mnist"\n')
  monkeypatch.chdir(tmp_path)
  for dataset in ("cifar10", "imagenet128", "cifar10"):
    path = os.path.join(CONFIG_ROOT, dataset, "ssgan.gin")
    _parse(os.path.relpath(path, tmp_path))
    try:
      assert gin.query_parameter("dataset.name") == dataset
    finally:
      gin.clear_config()


def test_a_missing_include_is_a_one_line_config_error(tmp_path):
  config = tmp_path / "arm.gin"
  config.write_text('include "no_such_base.gin"\n')
  with pytest.raises(errors.ConfigError, match="bad gin config: .*no_such_base.gin"):
    _parse(str(config))
  gin.clear_config()
