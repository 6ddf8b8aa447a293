"""Every runnable config in gin_configs/, shrunk by --gin_param-style bindings, goes the
whole way: it trains 2 steps and checkpoints, resumes and trains a third, exports G and D
as a SavedModel, and that export is evaluated with a stand-in Inception.

What is real: each config file, parsed by the CLI's parser (gin_files.parse, includes and
all), trained in-process by `train_lib.train` as `python -m ssgan_tf.main` would, and
each config's own dataset: TFDS datasets under `tfds.testing.mock_data` (random examples
of the dataset's features through our real TFDS loading and preprocessing, at its own
resolution), the built-in MNIST as is. The bindings (tiny_bindings) keep each config's
architecture, normalisation, loss, penalty, EMA and rotation weights and shrink only
widths, batch, D steps per G step (1) and the run; evaluation takes 8 samples.

Cost (the suite has ~1 min 30 s for this file on a 2-core CPU): training runs eagerly
(`tf.config.run_functions_eagerly`), which halves the CPU time of tracing each config's
train step twice (train, then resume); the export traces G and D in graph mode for every
config, and the graph-mode train step is what test_train_lib, test_ssgan and the nets'
tests run. SSGAN_TEST_GRAPH_MODE=1 trains in graph mode instead (~2x slower).

Budget: the whole way costs 8-13 seconds per config at 32 px and 18-42 at 128 px in the
suite on a 2-core AVX2-only CPU (building the networks, eagerly, three times: most of it
at 128 px), too much for ~18 configs in its 15 minutes. By default it runs for every
config at 48 px or less and for one config per image shape among the rest (the first
with the rotation loss on, by name: celeba_hq128/ssgan.gin, the 128-px ResNet). What the
other 128-px arms vary (the normalisation of G, the conditional G and D, BigGAN's
networks, the dataset) runs the whole way at 32 px or, for BigGAN's networks, a forward
and backward pass at 32 and 64 px in test_nets_compare_gan; every config's own model is
built at full width in test_gin_configs, and `test_config_reads_its_own_data` reads
every config's data. The others are skipped, naming the config that ran at their image
shape. SSGAN_TEST_ALL_CONFIGS=1 runs the whole way for every config (~3x longer; for CI
with more cores, or before a release).

Configs are found by glob, so new ones are covered without editing this file; base.gin
files are not configs (each is included by the arms beside it). A config that binds
settings this code does not have (e.g. the conditional baseline on a branch without it)
is skipped, naming the unknown binding; see `_parse_or_skip`.
"""

import contextlib
import glob
import os
import time

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import inception_standin
from tiny_runs import ROOT

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import export_lib
from ssgan_tf import gin_files
from ssgan_tf import nets
from ssgan_tf import train_lib
from ssgan_tf import workdir as workdir_lib
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import eval_lib

CONFIG_ROOT = os.path.join(ROOT, "gin_configs")
CONFIGS = sorted(p for p in glob.glob(os.path.join(CONFIG_ROOT, "**", "*.gin"), recursive=True)
                 if os.path.basename(p) != "base.gin")
BATCH = 4  # The smallest batch that rotates (one image per angle).
MOCK_EXAMPLES = 9  # Per split: >= EVAL_SAMPLES; a square (callbacks.grid, see below).
EVAL_SAMPLES = 8
FEATURES = 8  # Of the stand-in Inception.
GRAPH_MODE = os.environ.get("SSGAN_TEST_GRAPH_MODE") == "1"
ALL_CONFIGS = os.environ.get("SSGAN_TEST_ALL_CONFIGS") == "1"
SMALL = 48  # px: configs at this resolution or less always run the whole way.
# gin's messages for a configurable or parameter it does not know.
UNKNOWN_BINDING = ("No configurable matching", "not a valid parameter", "Unknown")


def _name(path):
  return os.path.relpath(path, CONFIG_ROOT)


def _parse_or_skip(path, params=()):
  gin.clear_config()
  try:
    gin_files.parse([path], list(params))
  except errors.ConfigError as e:
    if any(s in str(e) for s in UNKNOWN_BINDING):
      gin.clear_config()
      pytest.skip(f"{_name(path)} binds settings this code does not have: {e}")
    raise


def _bound(name, default):
  try:
    return gin.query_parameter(name)
  except ValueError:  # Not bound.
    return default


def tiny_bindings(path):
  """`(architecture, --gin_param lines shrinking the config at `path`)`."""
  _parse_or_skip(path)
  architecture = gin.query_parameter("networks.architecture")
  # Merged into the config's own kwargs (which may set more, e.g. resnet_biggan's G SN).
  g_tiny, d_tiny = nets.ARCHITECTURES[architecture].TINY_KWARGS
  g_kwargs = {**(_bound("networks.generator_kwargs", None) or {}), **g_tiny}
  d_kwargs = {**(_bound("networks.discriminator_kwargs", None) or {}), **d_tiny}
  gin.clear_config()
  return architecture, [
      f"networks.generator_kwargs = {g_kwargs!r}",
      f"networks.discriminator_kwargs = {d_kwargs!r}",
      f"ssgan.global_batch_size = {BATCH}", f"ssgan.rotated_batch_size = {BATCH}",
      "ssgan.disc_iters = 1",
      "ssgan.ema_start_step = 1",  # Where the config keeps an EMA of G, it moves.
      "train.log_every = 1", "train.checkpoint_every = 100",  # (and at the end)
      "train.checkpoint_every_secs = 0", "train.sample_every = 100"]


def _image_shape():
  name = gin.query_parameter("dataset.name")
  if name == "mnist":
    return data.MNIST_SHAPE
  resolution = data.TFDS_DATASETS[name].resolution
  return (resolution, resolution, 3)


def _shape_key(path):
  """(the image shape of a config, whether its rotation loss is on); (None, False) where
  the config does not parse here."""
  gin.clear_config()
  try:
    gin_files.parse([path], [])
    rotation = bool(_bound("ssgan.rotation_weight_d", 1.0) or
                    _bound("ssgan.rotation_weight_g", 0.2))
    return _image_shape(), rotation
  except (errors.ConfigError, KeyError):
    return None, False
  finally:
    gin.clear_config()


def _whole_way_runs():
  """{config path: the path whose whole-way run stands for it} (itself where it runs)."""
  keys = {path: _shape_key(path) for path in CONFIGS}
  covered_by = {}
  for path, (shape, _) in sorted(keys.items(), key=lambda kv: (not kv[1][1], kv[0])):
    if ALL_CONFIGS or shape is None or shape[0] <= SMALL:
      covered_by[path] = path
    else:
      covered_by[path] = next((p for p, (s, _) in keys.items()
                               if s == shape and covered_by.get(p) == p), path)
  return covered_by


COVERED_BY = _whole_way_runs()


@contextlib.contextmanager
def _eager_unless_graph_mode():
  tf.config.run_functions_eagerly(not GRAPH_MODE)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
  return classifiers.load_inception(inception_standin.save_standin(
      tmp_path_factory.mktemp("inception"), features=FEATURES))


@pytest.fixture(scope="module", params=CONFIGS, ids=_name)
def run(request, inception, tmp_path_factory):
  """One config's whole way, and what each stage left."""
  path = request.param
  if COVERED_BY[path] != path:
    pytest.skip(f"the image shape of {_name(COVERED_BY[path])}, which ran the whole way "
                "(see the module's docstring); SSGAN_TEST_ALL_CONFIGS=1 runs this one too")
  architecture, bindings = tiny_bindings(path)
  workdir = str(tmp_path_factory.mktemp("run") / "workdir")
  out = {"name": _name(path), "bindings": bindings, "workdir": workdir,
         "architecture": architecture}
  start = time.process_time()
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    try:
      for key, steps in (("first", 2), ("resumed", 3)):
        _parse_or_skip(path, bindings + [f"train.total_steps = {steps}"])
        with _eager_unless_graph_mode():
          model = train_lib.train(workdir, tf.distribute.get_strategy())
        out[key] = {"step": model.step, "architecture": model.generator.architecture,
                    "checkpoints": sorted(os.listdir(workdir_lib.checkpoint_dir(workdir)))}
      gin.clear_config()
      out["export_dir"] = export_lib.export(workdir, include_discriminator=True)
      gin.clear_config()
      restored = export_lib.load_for_evaluation(out["export_dir"])
      out["records"] = eval_lib.evaluate(
          workdir, restored, classifier=inception, num_samples=EVAL_SAMPLES,
          num_fake_sets=1, metrics=("fid", "is"), batch_size=EVAL_SAMPLES,
          cache_dir=str(tmp_path_factory.mktemp("cache")))
    finally:
      gin.clear_config()
  out["cpu_seconds"] = time.process_time() - start
  return out


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_config_reads_its_own_data(path):
  # Every config, whether or not it runs the whole way: its dataset (mock TFDS, or the
  # built-in MNIST) gives training batches of the shape its model is built for.
  _, bindings = tiny_bindings(path)
  with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    _parse_or_skip(path, bindings)
    try:
      shape = _image_shape()
      source = data.get_source()
      batch = next(iter(data.train_pipeline(source, "train", BATCH)))
    finally:
      gin.clear_config()
  assert source.image_shape == shape and batch.shape == (BATCH,) + shape


def test_trains_checkpoints_and_resumes(run):
  assert run["first"]["step"] == 2 and run["resumed"]["step"] == 3
  assert "ckpt-2.index" in run["first"]["checkpoints"]
  assert {"ckpt-2.index", "ckpt-3.index"} <= set(run["resumed"]["checkpoints"])
  # Only a run that resumed at step 2 with another total_steps writes this file.
  assert os.path.exists(os.path.join(run["workdir"], "operative_config-2.gin"))
  # The bindings shrank the config; its architecture is what was trained.
  assert run["first"]["architecture"] == run["architecture"]
  assert workdir_lib.read_model_info(run["workdir"])["architecture"] == run["architecture"]


def test_export_is_evaluated_with_the_standin(run):
  records = {r["metric"]: r for r in run["records"]}
  assert any(name.startswith("fid") for name in records), sorted(records)
  for record in records.values():
    assert np.isfinite(record["value"]) and record["num_fake"] == EVAL_SAMPLES
    assert (record["step"], record["checkpoint"]) == (3, run["export_dir"])
  assert os.path.basename(run["export_dir"]) == "3"
  loaded = tf.saved_model.load(run["export_dir"])
  images = loaded.signatures["sample"](num_samples=tf.constant(2),
                                       seed=tf.constant(0, tf.int64))["images"]
  discriminate = loaded.signatures["discriminate"]
  # A conditional D scores each image with a label (here class 0).
  labels = ({"labels": tf.zeros([2], tf.int32)}
            if "labels" in discriminate.structured_input_signature[1] else {})
  out = discriminate(images=images, **labels)
  assert images.shape[0] == 2 and float(tf.reduce_max(tf.abs(images))) <= 1.0
  assert out["rotation_logits"].shape == (2, 4)
  print(f"\n{run['name']}: {run['cpu_seconds']:.1f} CPU s")
