"""Tests of export_lib.py and tools/sample.py: the SavedModel serves G in eval mode to a
process with neither Keras nor ssgan_tf, sampling is deterministic per seed, metadata is
readable, saved_model_cli works, and exports are atomic and never silently overwritten.

One tiny SNDCGAN (MNIST 32x32x1, base 4 channels, z 16) is trained for 2 steps per module,
with a learning rate high enough that G's output varies with z after so few steps.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import export_lib
from ssgan_tf import train_lib
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import eval_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
Z_DIM = 16
IMAGE_SHAPE = (32, 32, 1)
ATOL = 1e-5  # Same float32 graph; only op scheduling / oneDNN round-off may differ.

# First lines of every "serving client" process: with these entries None, importing Keras
# or ssgan_tf fails (TF skips its optional eager import of Keras), so the process can only
# succeed if the export and the client need neither.
BLOCK_IMPORTS = "import sys\nsys.modules['keras'] = sys.modules['ssgan_tf'] = None\n"
LOADED_BLOCKED = (
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'ssgan_tf') "
    "and sys.modules[m] is not None)\n")

CLIENT = BLOCK_IMPORTS + """
import json
import numpy as np
import tensorflow as tf

export_dir, z_path, images_path, out_dir = sys.argv[1:]
model = tf.saved_model.load(export_dir)
signatures = model.signatures
arrays = {}
for key, value in signatures["serving_default"](z=tf.constant(np.load(z_path))).items():
  arrays["serve_" + key] = value.numpy()
for name, seed in (("a", 7), ("b", 7), ("c", 8)):
  out = signatures["sample"](num_samples=tf.constant(5), seed=tf.constant(seed, tf.int64))
  arrays.update({f"sample_{name}_{key}": value.numpy() for key, value in out.items()})
images = tf.constant(np.load(images_path))
for call in ("1", "2"):
  for key, value in signatures["discriminate"](images=images).items():
    arrays[f"d{call}_{key}"] = value.numpy()
np.savez(out_dir + "/arrays.npz", **arrays)
metadata = {key: value.numpy() for key, value in signatures["metadata"]().items()}
metadata = {k: v.decode() if isinstance(v, bytes) else v.tolist() for k, v in metadata.items()}
with open(export_dir + "/assets.extra/ssgan_metadata.json") as f:
  metadata_file = json.load(f)
""" + LOADED_BLOCKED + """
with open(out_dir + "/client.json", "w") as f:
  json.dump({"signatures": sorted(signatures), "metadata": metadata,
             "metadata_file": metadata_file, "loaded": loaded}, f)
"""

# Runs tools/sample.py as its command line would, then records what it imported.
SAMPLE_TOOL = BLOCK_IMPORTS + """
import runpy
tool, out_path = sys.argv[1], sys.argv[2]
sys.argv = [tool] + sys.argv[3:]
try:
  runpy.run_path(tool, run_name="__main__")
except SystemExit as e:
  assert not e.code, e.code
""" + LOADED_BLOCKED + """
with open(out_path, "w") as f:
  f.write(repr(loaded))
"""


def _run(args, **kwargs):
  result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, **kwargs)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(workdir, model): 2 steps, checkpoints at steps 1 and 2."""
  workdir = str(tmp_path_factory.mktemp("workdir"))
  gin.clear_config()
  gin.parse_config([
      "dataset.name = 'mnist'", "networks.architecture = 'sndcgan'",
      "networks.generator_kwargs = {'base_channels': 4}",
      "networks.discriminator_kwargs = {'base_channels': 4}",
      "ssgan.global_batch_size = 8", f"ssgan.z_dim = {Z_DIM}",
      "optimizers.g_lr = 0.05",
      "train.total_steps = 2", "train.checkpoint_every = 1", "train.log_every = 1",
      "train.sample_every = 2",
  ])
  try:
    model = train_lib.train(workdir, tf.distribute.get_strategy())
  finally:
    gin.clear_config()
  return workdir, model


@pytest.fixture(scope="module")
def export_dir(trained):
  try:
    return export_lib.export(trained[0], include_discriminator=True)
  finally:
    gin.clear_config()


@pytest.fixture
def workdir_copy(trained, tmp_path):
  """A copy of the trained workdir without exports, for tests that write exports."""
  copy = str(tmp_path / "workdir")
  shutil.copytree(trained[0], copy, ignore=shutil.ignore_patterns("export"))
  yield copy
  gin.clear_config()


def _snapshot(directory):
  """{relative path: (mtime_ns, sha256)} of every file, and every directory."""
  files = {}
  for root, dirs, names in os.walk(directory):
    for name in dirs:
      files[os.path.relpath(os.path.join(root, name), directory)] = "dir"
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        files[os.path.relpath(path, directory)] = (os.stat(path).st_mtime_ns,
                                                   hashlib.sha256(f.read()).hexdigest())
  return files


def _z(num, seed=0):
  return np.random.default_rng(seed).normal(size=(num, Z_DIM)).astype(np.float32)


def test_uint8_mapping_rounds_half_to_even_and_clips():
  images = tf.constant([-2.0, -1.0, -0.999, 0.0, 0.5, 1.0, 1.5])
  # (x + 1) * 127.5 = -127.5, 0, 0.1275, 127.5, 191.25, 255, 318.75
  np.testing.assert_array_equal(export_lib.to_uint8(images), [0, 0, 0, 128, 191, 255, 255])


def test_fresh_process_without_keras_serves_g_and_d_in_eval_mode(trained, export_dir,
                                                                  tmp_path):
  workdir, model = trained
  z = _z(6)
  images = np.random.default_rng(1).uniform(-1, 1, (3,) + IMAGE_SHAPE).astype(np.float32)
  np.save(tmp_path / "z.npy", z)
  np.save(tmp_path / "images.npy", images)
  _run([sys.executable, "-c", CLIENT, export_dir, str(tmp_path / "z.npy"),
        str(tmp_path / "images.npy"), str(tmp_path)])
  with open(tmp_path / "client.json") as f:
    client = json.load(f)
  out = np.load(tmp_path / "arrays.npz")
  assert client["loaded"] == []
  assert client["signatures"] == ["discriminate", "metadata", "sample", "serving_default"]

  served = out["serve_images"]
  assert served.shape == (6,) + IMAGE_SHAPE and served.dtype == np.float32
  expected = model.generate(z).numpy()
  assert expected.std() > 0.05  # A G whose output varies, so the comparison means something.
  np.testing.assert_allclose(served, expected, atol=ATOL)
  np.testing.assert_array_equal(out["serve_images_uint8"],
                                np.clip(np.round((served + 1) * 127.5), 0, 255))
  assert out["serve_images_uint8"].dtype == np.uint8

  for key in ("images", "images_uint8", "z"):
    np.testing.assert_array_equal(out[f"sample_a_{key}"], out[f"sample_b_{key}"])
  assert out["sample_a_z"].shape == (5, Z_DIM)
  assert not np.allclose(out["sample_a_z"], out["sample_c_z"])
  assert not np.allclose(out["sample_a_images"], out["sample_c_images"])
  np.testing.assert_allclose(out["sample_a_images"],
                             model.generate(out["sample_a_z"]), atol=ATOL)

  expected_d = model.discriminator(images, training=False)
  for key in ("logits", "rotation_logits", "features"):
    np.testing.assert_allclose(out[f"d1_{key}"], expected_d[key], atol=ATOL)
    # Eval mode: no spectral-norm power iteration between the calls.
    np.testing.assert_array_equal(out[f"d1_{key}"], out[f"d2_{key}"])
  assert out["d1_rotation_logits"].shape == (3, 4)

  with open(os.path.join(workdir, "operative_config.gin")) as f:
    config = f.read()
  assert client["metadata_file"] == {
      "z_dim": Z_DIM, "z_distribution": "normal", "resolution": 32, "channels": 1,
      "pixel_range": [-1.0, 1.0], "architecture": "sndcgan", "step": 2,
      "checkpoint": os.path.join(workdir, "checkpoints", "ckpt-2")}
  assert client["metadata"] == {**client["metadata_file"], "operative_config": config}
  with open(os.path.join(export_dir, "assets.extra", "operative_config.gin")) as f:
    assert f.read() == config


def test_a_z_of_another_width_or_rank_is_named_by_the_signature(export_dir):
  # The input spec [None, z_dim] is not enforced on a loaded SavedModel: without the
  # check, G failed on a matmul of other sizes.
  serve = tf.saved_model.load(export_dir).signatures["serving_default"]
  for shape in ([2, Z_DIM + 1], [Z_DIM], [2, 1, Z_DIM], [0, Z_DIM + 1], []):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Shape of tensor z \[.*\] is not compatible with expected "
                             rf"shape \[\?,{Z_DIM}\]"):
      serve(z=tf.zeros(shape))
  assert serve(z=tf.zeros([0, Z_DIM]))["images"].shape[0] == 0


def test_images_of_another_shape_are_named_by_the_signature(export_dir):
  # Before the check: a rank-3 batch aborted the process in oneDNN's convolution, and other
  # sizes failed deep in D (sndcgan) or passed D's global pooling (ResNets).
  discriminate = tf.saved_model.load(export_dir).signatures["discriminate"]
  for shape in ([32, 32, 1], [2, 64, 64, 1], [2, 40, 24, 1], [2, 32, 32, 3]):
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"Shape of tensor images \[.*\] is not compatible with "
                             r"expected shape \[\?,32,32,1\]"):
      discriminate(images=tf.zeros(shape))
  assert discriminate(images=tf.zeros((2,) + IMAGE_SHAPE))["logits"].shape == [2]


def test_saved_model_cli_shows_and_runs_the_signatures(trained, export_dir, tmp_path):
  np.save(tmp_path / "z.npy", _z(4, seed=2))
  show = subprocess.Popen([SAVED_MODEL_CLI, "show", "--dir", export_dir, "--all"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _run([SAVED_MODEL_CLI, "run", "--dir", export_dir, "--tag_set", "serve",
        "--signature_def", "serving_default", "--inputs", f"z={tmp_path / 'z.npy'}",
        "--outdir", str(tmp_path / "out")])
  listing, errors = show.communicate()
  assert show.returncode == 0, errors[-3000:]
  for name in ("serving_default", "sample", "metadata", "discriminate"):
    assert f"signature_def['{name}']" in listing
  assert "outputs['images_uint8']" in listing
  np.testing.assert_allclose(np.load(tmp_path / "out" / "images.npy"),
                             trained[1].generate(_z(4, seed=2)), atol=ATOL)


def test_sample_tool_writes_png_grid_and_npy_without_keras(export_dir, tmp_path):
  tool = os.path.join(ROOT, "tools", "sample.py")
  # The .npy in a folder that does not exist yet: the tool makes it.
  outputs = {"png": str(tmp_path / "grid.png"), "npy": str(tmp_path / "new" / "x.npy")}
  runs = [subprocess.Popen(
      [sys.executable, "-c", SAMPLE_TOOL, tool, str(tmp_path / f"{kind}.loaded"),
       f"--export_dir={export_dir}", f"--output={path}", "--num_samples=10", "--seed=3"],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for kind, path in outputs.items()]
  for run in runs:
    _, errors = run.communicate()
    assert run.returncode == 0, errors[-3000:]
  for kind in outputs:
    assert (tmp_path / f"{kind}.loaded").read_text() == "[]"
  samples = np.load(outputs["npy"])
  assert samples.shape == (10,) + IMAGE_SHAPE and samples.dtype == np.float32
  grid = tf.io.decode_png(tf.io.read_file(outputs["png"])).numpy()
  assert grid.shape == (3 * 32, 4 * 32, 1)  # 10 images: rows of ceil(sqrt(10)) = 4.
  tiles = grid.reshape(3, 32, 4, 32, 1).transpose(0, 2, 1, 3, 4).reshape(12, 32, 32, 1)
  np.testing.assert_array_equal(tiles[:10], np.clip(np.round((samples + 1) * 127.5), 0, 255))
  assert not tiles[10:].any()

  # An existing --output is replaced only with --overwrite (both runs at once).
  before = _snapshot(tmp_path)[os.path.basename(outputs["png"])]
  refused, replaced = [subprocess.Popen(
      [sys.executable, tool, f"--export_dir={export_dir}", f"--output={path}",
       "--num_samples=2", *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for path, extra in ((outputs["png"], []), (outputs["npy"], ["--overwrite"]))]
  refused_errors, replaced_errors = refused.communicate()[1], replaced.communicate()[1]
  assert refused.returncode == 1 and refused_errors.strip().splitlines()[-1] == (
      f"error: {outputs['png']} exists; pass --overwrite to replace it, or choose another "
      "--output.")
  assert _snapshot(tmp_path)[os.path.basename(outputs["png"])] == before
  assert replaced.returncode == 0, replaced_errors[-3000:]
  assert np.load(outputs["npy"]).shape == (2,) + IMAGE_SHAPE

  # The workdir instead of one export in it: the steps its export/ folder holds.
  workdir = os.path.dirname(os.path.dirname(export_dir))
  wrong = subprocess.run([sys.executable, tool, f"--export_dir={workdir}",
                          f"--output={tmp_path / 'y.png'}"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
  assert wrong.returncode == 1 and wrong.stderr.strip().splitlines()[-1] == (
      f"error: no SavedModel in {workdir!r}; its export/ folder holds the exports of steps "
      f"[2]: pass one, e.g. --export_dir={export_dir}")


def test_sample_tool_keeps_the_traceback_of_an_error_that_is_not_bad_input(tmp_path):
  # A SavedModel whose `sample` returns images of the wrong rank: the ValueError of the
  # grid is a bug (of the export or the tool), not bad input to report as one line.
  module = tf.Module()
  module.sample = tf.function(
      lambda num_samples, seed: {"images_uint8": tf.zeros([num_samples, 4, 4], tf.uint8)},
      input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int64)])
  tf.saved_model.save(module, str(tmp_path / "odd"), signatures={"sample": module.sample})
  run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sample.py"),
                        f"--export_dir={tmp_path / 'odd'}", f"--output={tmp_path / 'g.png'}"],
                       cwd=ROOT, capture_output=True, text=True, check=False)
  assert run.returncode == 1
  assert "Traceback (most recent call last)" in run.stderr
  assert run.stderr.strip().splitlines()[-1].startswith("ValueError: ")


def test_export_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="no checkpoint in .*train first"):
    export_lib.export(str(tmp_path))
  assert not os.path.exists(tmp_path / "export")


def test_a_read_only_workdir_is_one_line_and_nothing_is_left(workdir_copy, tmp_path):
  if os.geteuid() != 0:
    pytest.skip("a read-only bind mount needs root (root writes through chmod)")
  mount = tmp_path / "read_only"
  mount.mkdir()
  for command in (["mount", "--bind", workdir_copy, str(mount)],
                  ["mount", "-o", "remount,ro,bind", str(mount)]):
    if subprocess.run(command, capture_output=True, check=False).returncode:
      subprocess.run(["umount", str(mount)], capture_output=True, check=False)
      pytest.skip("cannot make a read-only bind mount here")
  try:
    before = _snapshot(workdir_copy)
    with pytest.raises(export_lib.ExportError, match=(
        r"cannot write the export '.*read_only/export/2' \(.*\); nothing was left there\. "
        r"Make the workdir writable or free space, then export again\.")):
      export_lib.export(str(mount))
    assert _snapshot(workdir_copy) == before
  finally:
    subprocess.run(["umount", str(mount)], check=True)


def test_existing_export_is_left_untouched(trained, export_dir):
  parent = os.path.dirname(export_dir)
  before = _snapshot(parent)
  try:
    with pytest.raises(export_lib.ExportError,
                       match=re.escape(f"export '{export_dir}' already exists; delete "
                                       "it, or pass overwrite=True")):
      export_lib.export(trained[0])
  finally:
    gin.clear_config()
  assert _snapshot(parent) == before


def test_an_export_finished_meanwhile_by_another_process_is_kept(workdir_copy):
  target = os.path.join(workdir_copy, "export", "2")
  save = tf.saved_model.save

  def save_while_another_export_finishes(*args, **kwargs):
    save(*args, **kwargs)
    os.makedirs(target)
    with open(os.path.join(target, "theirs"), "w") as f:
      f.write("x")

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tf.saved_model, "save", save_while_another_export_finishes)
    with pytest.raises(export_lib.ExportError,
                       match=re.escape(f"export '{target}' already exists")):
      export_lib.export(workdir_copy)
  assert os.listdir(os.path.dirname(target)) == ["2"] and os.listdir(target) == ["theirs"]


def test_named_checkpoint_overwrite_and_failed_exports(workdir_copy, caplog):
  export_root = os.path.join(workdir_copy, "export")
  with caplog.at_level("INFO", logger="absl"):
    first = export_lib.export(workdir_copy, "1")
  assert first == os.path.join(export_root, "1")
  assert (f"exporting step 1 to {first}: it serves G's own weights (the model keeps no EMA)"
          in caplog.messages)
  loaded = tf.saved_model.load(first)
  assert sorted(loaded.signatures) == ["metadata", "sample", "serving_default"]
  assert int(loaded.signatures["metadata"]()["step"]) == 1
  before = _snapshot(export_root)

  # Failures while writing the SavedModel, and when renaming it into place after the old
  # export was moved aside.
  save, rename = tf.saved_model.save, tf.io.gfile.rename

  def save_then_fail(*args, **kwargs):
    save(*args, **kwargs)
    raise OSError("disk full")

  def fail_to_publish(src, dst, overwrite=False):
    if dst == first and not src.endswith("-replaced"):
      raise OSError("disk full")
    rename(src, dst, overwrite)

  for target, name, failing in ((tf.saved_model, "save", save_then_fail),
                                (tf.io.gfile, "rename", fail_to_publish)):
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(target, name, failing)
      with pytest.raises(export_lib.ExportError, match=(
          r"cannot write the export '.*export/1' \(OSError: disk full\); nothing was left")):
        export_lib.export(workdir_copy, "1", overwrite=True)
    assert _snapshot(export_root) == before  # The old export is back; no temporary left.

  export_lib.export(workdir_copy, os.path.join(workdir_copy, "checkpoints", "ckpt-1"),
                    include_discriminator=True, overwrite=True)
  assert os.listdir(export_root) == ["1"]
  assert "discriminate" in tf.saved_model.load(first).signatures


def block_means_classifier():
  """A classifier of 32x32 grey digits whose features are their 4x4 block means (a 64-D
  summary every image has) and whose "logits" their 8x8 block means."""
  network = lambda images: {  # noqa: E731
      "pool_3": tf.reshape(tf.nn.avg_pool2d(images, 4, 4, "VALID"), [tf.shape(images)[0], -1]),
      "logits": tf.reshape(tf.nn.avg_pool2d(images, 8, 8, "VALID"), [tf.shape(images)[0], -1])}
  return classifiers.Classifier(network, name="blocks", family="inception", channels=1)


def assert_export_evaluates_like(export_dir, model, num_fake_sets):
  """Evaluates `export_dir` and the in-memory `model` it was exported from (FID and IS on
  block means, 40 fakes a set) and asserts the same numbers; returns the restored export."""
  classifier = block_means_classifier()
  try:
    restored = export_lib.load_for_evaluation(export_dir)
    source = restored.source  # Built on first use, from the gin config cleared below.
  finally:
    gin.clear_config()
  kwargs = dict(num_samples=40, metrics=("fid", "is"), batch_size=20,
                num_fake_sets=num_fake_sets)
  from_export = eval_lib.compute_metrics(restored.model, source, classifier, **kwargs)
  from_checkpoint = eval_lib.compute_metrics(model, source, classifier, **kwargs)
  for exported, checkpointed in zip(from_export, from_checkpoint, strict=True):
    assert exported["metric"] == checkpointed["metric"]
    np.testing.assert_allclose(exported["values"], checkpointed["values"], rtol=1e-4)
  return restored


def test_an_export_evaluates_to_its_checkpoints_numbers(trained, export_dir):
  restored = assert_export_evaluates_like(export_dir, trained[1], num_fake_sets=2)
  assert (restored.step, restored.checkpoint_path, restored.image_shape) == (
      2, export_dir, IMAGE_SHAPE)


def test_evaluating_a_missing_export_is_a_clear_error(tmp_path):
  with pytest.raises(errors.ExportError, match="no SavedModel in .*export one first"):
    export_lib.load_for_evaluation(str(tmp_path))


def test_evaluating_the_export_folder_names_the_exports_in_it(export_dir):
  base = os.path.dirname(export_dir)
  with pytest.raises(errors.ExportError, match=(
      rf"no SavedModel in '{base}'; it holds the exports of steps \[2\]: pass one, e.g. "
      rf"--export_dir={export_dir}$")):
    export_lib.load_for_evaluation(base)
  workdir = os.path.dirname(base)
  with pytest.raises(errors.ExportError, match=(
      rf"no SavedModel in '{workdir}'; its export/ folder holds the exports of steps \[2\]: "
      rf"pass one, e.g. --export_dir={export_dir}$")):
    export_lib.load_for_evaluation(workdir)
