"""Stage 6 (train_lib.py, callbacks.py): a stopped run resumes exactly; the workdir only
grows; divergence keeps the last good checkpoint; bad input fails before writing anything.

Every run is the quickstart config shrunk to a tiny SNDCGAN (base 4 channels, global
batch 8) on the built-in MNIST, for a few steps, in this process.
"""

import os
import re
import shutil
import signal
import socket
import threading
import time

import gin
import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from ssgan_tf import distribute
from ssgan_tf import errors
from ssgan_tf import preemption
from ssgan_tf import train_lib
from ssgan_tf import workdir as workdir_lib
from ssgan_tf import workdir_lock
from ssgan_tf.evaluation import records

import strategies
from test_checkpoints import file_size_limit
from tiny_runs import files as _files
from tiny_runs import QUICKSTART
from tiny_runs import tiny_bindings

TINY = tiny_bindings(log_every=1)


def _train(workdir, total_steps, *bindings, strategy=None):
  """train_lib.train on the tiny quickstart config (train.seed: the same initial weights)."""
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [QUICKSTART], TINY + [f"train.total_steps = {total_steps}", *bindings])
  try:
    return train_lib.train(str(workdir), strategy or tf.distribute.get_strategy())
  finally:
    gin.clear_config()


def _state(model):
  """Every value exact resumption depends on, in a fixed order."""
  variables = (model.generator.variables + model.discriminator.variables
               + model.d_optimizer.variables + model.g_optimizer.variables)
  return [v.numpy() for v in variables] + [model.noise.state.numpy()]


def _assert_same_state(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


def _scalars(workdir):
  """{(step, tag): value} of the scalar summaries under workdir/train."""
  out = {}
  folder = os.path.join(workdir, "train")
  for name in os.listdir(folder):
    for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        array = tf.make_ndarray(value.tensor)
        if array.ndim == 0:
          out[(event.step, value.tag)] = float(array)
  return out


def _checkpoint_steps(workdir):
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  return sorted(int(m.group(1)) for m in map(re.compile(r"ckpt-(\d+)\.index").fullmatch, names)
                if m)


def _first_line(error):
  # gin appends "In call to configurable ..." lines; the CLI prints only the first.
  return str(error.value).splitlines()[0]


# --- Resuming ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """4 steps straight; the same stopped after 2, run again (nothing to do), resumed to 4."""
  straight, stopped = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("stopped")
  result = {"straight": _state(_train(straight, 4))}
  result["after_2"] = _state(_train(stopped, 2))
  files_after_2 = _files(stopped)
  result["at_2_dir"] = tmp_path_factory.mktemp("at_2") / "w"
  shutil.copytree(stopped, result["at_2_dir"])
  result["rerun_2"] = _state(_train(stopped, 2))
  result["rerun_files_unchanged"] = _files(stopped) == files_after_2
  result["resumed"] = _state(_train(stopped, 4))
  result.update(straight_dir=straight, stopped_dir=stopped)
  return result


def test_restored_state_equals_the_saved_one(runs):
  # The rerun with total_steps already reached only restores: what it returns is the
  # checkpoint, which must hold every weight (BN statistics and spectral-norm u of
  # layers kept in lists included), every Adam slot and the noise generator's state.
  _assert_same_state(runs["rerun_2"], runs["after_2"])


def test_rerun_of_a_finished_run_writes_nothing(runs):
  assert runs["rerun_files_unchanged"]


def test_resumed_run_equals_an_uninterrupted_one(runs):
  _assert_same_state(runs["resumed"], runs["straight"])
  assert _checkpoint_steps(runs["stopped_dir"]) == _checkpoint_steps(runs["straight_dir"]) == [2, 4]


def test_losses_after_resuming_equal_those_of_an_uninterrupted_run(runs):
  straight, resumed = _scalars(runs["straight_dir"]), _scalars(runs["stopped_dir"])
  losses = {key: value for key, value in straight.items() if key[1].startswith("loss/")}
  assert {step for step, _ in losses} == {1, 2, 3, 4}
  assert len(losses) == 4 * 4  # loss/d, loss/g and both rotation losses, every step.
  assert losses == {key: resumed[key] for key in losses}


def test_workdir_layout(runs):
  files = _files(runs["straight_dir"])
  expected = {"operative_config.gin", "model_info.json", "checkpoints/checkpoint",
              "samples/fakes_00000002.png", "samples/fakes_00000004.png"}
  assert expected <= set(files)
  assert {f"checkpoints/ckpt-{s}.index" for s in (2, 4)} <= set(files)
  assert any(f.startswith("train/events.out.tfevents") for f in files)
  # Nothing else: no scratch folders, no probe files.
  others = {f for f in files if not f.startswith(("checkpoints/ckpt-", "train/events"))}
  assert others == expected


def test_resume_takes_the_configured_learning_rates(runs, tmp_path):
  # The checkpoint stores the Adam learning rates; a run resumed with other rates (e.g.
  # lowered after a divergence) must use those.
  workdir = tmp_path / "w"
  shutil.copytree(runs["stopped_dir"], workdir)
  first_config = (workdir / "operative_config.gin").read_text()
  model = _train(workdir, 5, "optimizers.g_lr = 1e-3", "optimizers.d_lr = 5e-4")
  assert float(model.g_optimizer.learning_rate) == pytest.approx(1e-3)
  assert float(model.d_optimizer.learning_rate) == pytest.approx(5e-4)
  # The workdir only grows: the changed configuration goes beside the first one.
  assert (workdir / "operative_config.gin").read_text() == first_config
  # (The stopped run had already resumed once, at step 2, with another total_steps.)
  assert sorted(p.name for p in workdir.glob("operative_config-*.gin")) == [
      "operative_config-2.gin", "operative_config-4.gin"]
  assert "optimizers.g_lr = 0.001" in (workdir / "operative_config-4.gin").read_text()


@pytest.mark.parametrize("run, lost_step", [("at_2_dir", 2), ("straight_dir", 4)])
def test_what_a_preemption_left_out_is_written_when_the_run_starts_again(runs, tmp_path, run,
                                                                         lost_step):
  # A preemption saves its step and stops before that step's sample grid and evaluation;
  # in the last call, the run started again has nothing left to train ("straight_dir").
  workdir = tmp_path / "w"
  shutil.copytree(runs[run], workdir)
  grid = workdir / "samples" / f"fakes_{lost_step:08d}.png"
  written = grid.read_bytes()
  grid.unlink()
  _train(workdir, 4, "train.eval_every = 2", "evaluation.num_samples = 20")
  assert grid.read_bytes() == written  # The same weights and noise: the same grid.
  evaluated = [(record["step"], record["metric"]) for record in records.read_records(
      str(workdir))]
  assert len(evaluated) == len(set(evaluated))  # Each step evaluated once.
  assert sorted({step for step, _ in evaluated}) == list(range(lost_step, 5, 2))
  files_before = _files(workdir)
  _train(workdir, 4, "train.eval_every = 2", "evaluation.num_samples = 20")
  assert _files(workdir) == files_before  # Nothing missing: nothing written.


# --- Divergence ----------------------------------------------------------------------

@pytest.mark.parametrize("binding", [
    # Both optimizers jump 1e30 per weight at step 3: the losses of step 3 are NaN.
    "optimizers.g_lr = 1e30",
    # An infinite weight of G's rotation loss: G's update, the last of step 3, makes G's
    # weights NaN while every loss logged at step 3 is finite. They must not be saved.
    "ssgan.rotation_weight_g = 1e400",
])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(runs, tmp_path, binding):
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2_dir"], workdir)
  with pytest.raises(errors.TrainingDiverged) as error:
    # Sample grids and evaluation due at the bad step are skipped: evaluation refused the
    # NaN images with a traceback in place of this error.
    _train(workdir, 6, binding, "train.checkpoint_every = 1", "train.sample_every = 1",
           "train.eval_every = 1")
  assert _first_line(error).startswith("non-finite loss or weights at step 3;")
  assert not list(workdir.glob("samples/fakes_0000000[3-6].png"))
  # (Step 2, the good one resumed from, was due and is evaluated first.)
  assert {record["step"] for record in records.read_records(str(workdir))} == {2}
  assert "ckpt-2" in _first_line(error) and "Lower the learning rates" in _first_line(error)
  assert _checkpoint_steps(workdir) == [2]
  assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-2")
  # The kept checkpoint is the one the stopped run wrote.
  restored = workdir_lib.restore_for_inference(str(workdir))
  _assert_same_state(_state(restored.model), runs["after_2"])
  gin.clear_config()


def test_a_file_size_limit_met_in_training_ends_with_one_line_naming_it(runs, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2_dir"], workdir)
  checkpoint_bytes = min(p.stat().st_size for p in workdir.glob("checkpoints/ckpt-2.data-*"))
  with file_size_limit(checkpoint_bytes // 2):
    with pytest.raises(errors.WorkdirError) as error:
      _train(workdir, 6, "train.checkpoint_every = 1")
  assert _first_line(error).startswith(
      "a file size limit (e.g. `ulimit -f`) was reached: could not save step 3 in ")
  assert _checkpoint_steps(workdir) == [2]


def test_a_workdir_that_has_no_room_is_refused_at_once_saying_so(tmp_path):
  workdir = tmp_path / "w"
  with file_size_limit(1), pytest.raises(errors.WorkdirError) as error:
    _train(workdir, 2)
  assert _first_line(error) == (
      f"cannot write to workdir '{workdir}': a file size limit (e.g. `ulimit -f`) was "
      "reached; free space or choose a --workdir on another disk.")
  assert not (workdir / "checkpoints" / ".write_test").exists()


# --- Bad input: an error naming the fix, and nothing written --------------------------

def _write_png(path, size):
  path.parent.mkdir(parents=True, exist_ok=True)
  PIL.Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(path)


@pytest.mark.parametrize("case, match", [
    ("missing folder", r"does not exist or is not a folder; set dataset.image_dir"),
    ("empty folder", r"no images in .*searched recursively"),
    ("corrupt image", r"1 of 2 images in .* cannot be read: .*bad\.png.* Remove or re-save"),
    ("resolution 28", r"sndcgan needs a resolution divisible by 8; got 28"),
])
def test_unusable_image_folder_fails_before_writing(tmp_path, case, match):
  images = tmp_path / "images"
  if case != "missing folder":
    images.mkdir()
  if case in ("corrupt image", "resolution 28"):
    _write_png(images / "good.png", 40)
  if case == "corrupt image":
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  resolution = 28 if case == "resolution 28" else 32
  workdir = tmp_path / "workdir"
  with pytest.raises(ValueError) as error:
    _train(workdir, 2, 'dataset.name = "folder"', f'dataset.image_dir = "{images}"',
           f"dataset.resolution = {resolution}")
  assert error.match(match)
  assert not workdir.exists()


def test_a_workdir_inside_the_image_folder_is_refused(tmp_path):
  images = tmp_path / "images"
  _write_png(images / "good.png", 40)
  (tmp_path / "link").symlink_to(images)
  folder = ['dataset.name = "folder"', f'dataset.image_dir = "{images}"',
            "dataset.resolution = 32"]
  for workdir in (images / "runs" / "a", tmp_path / "link" / "a"):
    with pytest.raises(errors.ConfigError) as error:
      _train(workdir, 2, *folder)
    assert _first_line(error) == (
        f"--workdir {workdir} is inside the training images (folder:{images}): its sample "
        "grids would join them at the next start; use a workdir outside that folder.")
  assert sorted(os.listdir(images)) == ["good.png"]
  _train(tmp_path / "images_run", 1, *folder)  # A sibling that shares the name's start.


@pytest.mark.parametrize("below", ["", "workdir"])
def test_a_workdir_that_is_or_is_under_a_file_is_refused_naming_it(tmp_path, below):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  workdir = os.path.join(blocker, below) if below else str(blocker)
  with pytest.raises(errors.WorkdirError) as error:  # Before the data: its folder is
    _train(workdir, 2, 'dataset.name = "folder"',  # missing, and not named.
           f'dataset.image_dir = "{tmp_path / "missing"}"', "dataset.resolution = 32")
  assert _first_line(error) == (f"workdir {workdir!r} cannot be a folder: {str(blocker)!r} "
                                "is a file; choose another --workdir.")
  assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("bindings, match", [
    # Same architecture, other widths: the checkpoint does not fit the model.
    (['networks.generator_kwargs = {"base_channels": 8}'],
     r"checkpoint .*ckpt-2 does not match the configured model \(its networks were built "
     r"with other settings: networks.generator_kwargs \{'base_channels': 4\} -> "
     r"\{'base_channels': 8\}\); use a new --workdir"),
    # Another architecture: model_info.json says so before any checkpoint is read.
    (['networks.architecture = "resnet_cifar"', 'networks.generator_kwargs = {"g_channels": 4}',
      'networks.discriminator_kwargs = {"d_channels": 4}'], r"holds a different model"),
])
def test_workdir_of_another_model_is_refused_and_left_alone(runs, tmp_path, bindings, match):
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2_dir"], workdir)
  before = _files(workdir)
  with pytest.raises(errors.WorkdirError) as error:
    _train(workdir, 6, *bindings)
  assert error.match(match)
  assert "use a new --workdir" in _first_line(error)
  assert _files(workdir) == before


@pytest.mark.parametrize("removed", ["checkpoints/", "ckpt-* (the state file kept)"])
def test_an_earlier_runs_outputs_without_its_checkpoints_are_not_trained_over(runs, tmp_path,
                                                                             removed):
  # Training from step 0 used to rewrite samples/ silently (or, with the state file kept,
  # ended in a long TensorSliceReader error saying the missing files were "left on disk").
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2_dir"], workdir)
  for path in (workdir / "checkpoints").iterdir():
    if removed == "checkpoints/" or path.name.startswith("ckpt-"):
      path.unlink()
  before = _files(workdir)
  with pytest.raises(errors.WorkdirError) as error:
    _train(workdir, 2)
  assert _first_line(error) == (
      f"workdir '{workdir}' has no checkpoint to resume, but an earlier run's 1 sample "
      "grid(s) (the last fakes_00000002.png): training from step 0 would write over them. "
      "Put its checkpoints/ back to resume, or train in a new --workdir (or move samples/ "
      "and metrics.jsonl away first).")
  assert _files(workdir) == before
  # Doing what it says trains from step 0.
  shutil.move(workdir / "samples", tmp_path / "old_samples")
  _assert_same_state(_state(_train(workdir, 2)), runs["after_2"])


def test_global_batch_not_divisible_by_the_replicas(tmp_path):
  strategy = strategies.own_mirrored_strategy()
  with pytest.raises(ValueError) as error:
    _train(tmp_path / "w", 2, "ssgan.global_batch_size = 7", strategy=strategy)
  assert _first_line(error).startswith(
      "ssgan.global_batch_size = 7 must be a multiple of 4 x 2 replica(s) = 8: ")
  assert not (tmp_path / "w").exists()


# --- Faults: preemption, a second trainer, damaged checkpoints, time-based saves ---------

def _sigterm_when(path):
  """Starts a thread that sends this process SIGTERM once `path` exists (training has
  started: the operative config is written after the first step)."""
  def watch():
    deadline = time.monotonic() + 300
    while not os.path.exists(path):
      if time.monotonic() > deadline:
        return  # The test fails: training is not stopped.
      time.sleep(0.005)  # Polling a condition, not waiting for a guessed duration.
    # Only while training's handler is installed: after it, SIGTERM would end this
    # pytest worker (the test then fails: training was not stopped).
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
      os.kill(os.getpid(), signal.SIGTERM)
  thread = threading.Thread(target=watch, daemon=True)
  thread.start()
  return thread


LONG = ["train.checkpoint_every = 1000", "train.sample_every = 1000", "train.log_every = 12"]


def test_sigterm_mid_interval_saves_the_current_step_and_resumes_exactly(tmp_path):
  straight = _state(_train(tmp_path / "straight", 12, *LONG))
  workdir = tmp_path / "preempted"
  watcher = _sigterm_when(workdir / "operative_config.gin")
  with pytest.raises(preemption.Preempted) as stopped:
    _train(workdir, 12, *LONG)
  watcher.join()
  step = stopped.value.step
  assert 1 <= step < 12 and step % 1000  # Between two step-based checkpoints.
  assert stopped.value.exit_code == errors.EXIT_CODE_PREEMPTED == 75
  assert _first_line(stopped) == (f"stopped by SIGTERM at step {step}: saved "
                                  f"{workdir / 'checkpoints' / f'ckpt-{step}'}; run the "
                                  "same command again to resume.")
  assert _checkpoint_steps(workdir) == [step]
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # The handler is restored.
  assert not (workdir / "lock.json").exists()
  _assert_same_state(_state(_train(workdir, 12, *LONG)), straight)


def test_a_second_trainer_refuses_at_once_and_leaves_the_first_alone(runs, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2_dir"], workdir)
  with workdir_lock.WorkdirLock(str(workdir)):  # What a running trainer holds.
    held = (workdir / "lock.json").read_text()
    before = _files(workdir)
    with pytest.raises(errors.WorkdirError) as error:
      _train(workdir, 4)
    assert re.search(rf"is in use by another trainer \(pid {os.getpid()} on host "
                     rf"{re.escape(socket.gethostname())} since .*\); wait for it",
                     _first_line(error)), _first_line(error)
    assert (workdir / "lock.json").read_text() == held
    assert _files(workdir) == before


def test_a_second_trainer_refuses_before_loading_data(tmp_path):
  # The missing image folder would be the first error if data were loaded first.
  with workdir_lock.WorkdirLock(str(tmp_path)):
    with pytest.raises(errors.WorkdirError, match="is in use by another trainer"):
      _train(tmp_path, 2, 'dataset.name = "folder"',
             f'dataset.image_dir = "{tmp_path / "missing"}"')


def test_an_unreadable_latest_checkpoint_is_set_aside_and_the_one_before_resumed(runs,
                                                                               tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(runs["stopped_dir"], workdir)  # ckpt-2 and ckpt-4.
  [data] = (workdir / "checkpoints").glob("ckpt-4.data-*")
  data.write_bytes(data.read_bytes()[:100])  # Cut short, as by a crash mid-write.
  resumed = _train(workdir, 4)
  # Training went on from step 2 and wrote step 4 anew, equal to the uninterrupted run.
  _assert_same_state(_state(resumed), runs["straight"])
  names = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  kept = [n for n in names if n.startswith("ckpt-4.unreadable-")]
  assert len(kept) == 2 and any(n.endswith(".index") for n in kept)  # Kept, not deleted.
  assert _checkpoint_steps(workdir) == [2, 4]


def test_an_empty_state_file_and_a_save_cut_short_do_not_stop_an_exact_resume(runs, tmp_path):
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2_dir"], workdir)  # ckpt-2.
  checkpoint_dir = workdir / "checkpoints"
  (checkpoint_dir / "checkpoint").write_text("")  # As a full disk or a crash can leave it.
  cut_short = checkpoint_dir / "ckpt-3_temp"  # What a kill -9 in a save leaves.
  cut_short.mkdir()
  (cut_short / "part-00000-of-00001.data-00000-of-00001.tempstate123").write_bytes(b"x" * 64)
  _assert_same_state(_state(_train(workdir, 4)), runs["straight"])
  assert not cut_short.exists()
  assert len(list(checkpoint_dir.glob("checkpoint.unreadable-*"))) == 1  # Kept aside.
  assert _checkpoint_steps(workdir) == [2, 4]


@pytest.mark.parametrize("binding, message", [
    ("train.total_steps = 'abc'", "train.total_steps must be an integer; got 'abc'"),
    ("train.checkpoint_every = 0", "train.checkpoint_every must be >= 1; got 0"),
    ("train.checkpoint_every_secs = -5", "train.checkpoint_every_secs must be >= 0; got -5"),
    ("ssgan.z_dim = 0", "ssgan.z_dim must be >= 1; got 0"),
    ("ssgan.rotated_batch_size = 0", "ssgan.rotated_batch_size = 0 leaves no images"),
    ("optimizers.g_lr = -1.0", "optimizers.g_lr must be > 0; got -1.0"),
    ("train.steps_per_execution = 3", "train.steps_per_execution = 3 does not divide"),
])
def test_settings_that_make_no_sense_fail_before_writing(tmp_path, binding, message):
  with pytest.raises(errors.ConfigError) as error:
    _train(tmp_path / "w", 2, binding)
  assert _first_line(error).startswith(message)
  # Not even model_info.json: the corrected command must not find "a different model".
  assert not (tmp_path / "w").exists()


def test_xla_under_several_replicas_is_refused_before_writing(tmp_path):
  two_cpus = distribute.make_strategy("mirrored", num_cpu_devices=2)
  with pytest.raises(errors.ConfigError, match=(
      r"train\.jit_compile=True works on one device only; this strategy has 2 replicas")):
    _train(tmp_path / "w", 2, "train.jit_compile = True", strategy=two_cpus)
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("seconds, steps", [(1e-6, [1, 2, 3]), (0, [3])])
def test_time_based_checkpoints_come_besides_the_step_based_ones(tmp_path, seconds, steps):
  # 1e-6 s is always up after a step: a checkpoint every step although checkpoint_every
  # is 1000; 0 turns them off: only the final one.
  _train(tmp_path / "w", 3, *LONG, f"train.checkpoint_every_secs = {seconds}")
  assert _checkpoint_steps(tmp_path / "w") == steps


def test_training_and_restoring_leave_the_callers_keras_policy_alone(tmp_path):
  # The policy is the caller's (a notebook's): training in bf16 builds bf16 layers but
  # leaves float32 set; restoring (float32) leaves a bf16 one set.
  keras.config.set_dtype_policy("float32")
  model = _train(tmp_path / "w", 1, 'train.precision = "mixed_bfloat16"',
                 "train.allow_emulated_bf16 = True")
  assert model.generator.dtype_policy.name == "mixed_bfloat16"
  assert keras.config.dtype_policy().name == "float32"
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    restored = workdir_lib.restore_for_inference(str(tmp_path / "w"))
    assert restored.model.generator.dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
  finally:
    keras.config.set_dtype_policy("float32")
    gin.clear_config()
