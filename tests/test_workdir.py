"""workdir.py: atomic writes leave either the old or the new content, never a partial one
nor a temporary; model_info.json guards a workdir against another model; a checkpoint that
cannot be read is named with the steps on disk, one deleted meanwhile replaced by the new
latest."""

import json
import logging
import os
import re
import shutil

import gin
import pytest
import tensorflow as tf

from ssgan_tf import checkpoints
from ssgan_tf import errors
from ssgan_tf import files
from ssgan_tf import workdir

from test_train_lib import _train


def test_write_atomically_replaces_a_file_whole(tmp_path):
  path = str(tmp_path / "sub" / "info.json")
  files.write_atomically(path, "old")
  files.write_atomically(path, b"new")
  assert open(path, "rb").read() == b"new"
  assert os.listdir(tmp_path / "sub") == ["info.json"]


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path, kind):
  path = tmp_path / "out"
  if kind == "file":
    path.write_text("old")
  else:
    path.mkdir()
    (path / "a").write_text("old")
  with pytest.raises(OSError, match="disk full"):
    with files.atomic_output(str(path)) as tmp:
      if kind == "file":
        open(tmp, "w").write("half")
      else:
        os.mkdir(tmp)
        open(os.path.join(tmp, "a"), "w").write("half")
      raise OSError("disk full")
  assert os.listdir(tmp_path) == ["out"]
  assert (path if kind == "file" else path / "a").read_text() == "old"


def test_a_directory_is_replaced_whole(tmp_path):
  path = tmp_path / "export"
  path.mkdir()
  (path / "stale").write_text("x")
  with files.atomic_output(str(path)) as tmp:
    os.mkdir(tmp)
    open(os.path.join(tmp, "fresh"), "w").write("y")
  assert os.listdir(path) == ["fresh"] and os.listdir(tmp_path) == ["export"]


def test_no_overwrite_refuses_before_writing(tmp_path):
  (tmp_path / "f").write_text("keep")
  with pytest.raises(errors.WorkdirError, match="exists already"):
    with files.atomic_output(str(tmp_path / "f"), overwrite=False):
      pytest.fail("must not be reached")
  assert (tmp_path / "f").read_text() == "keep"


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_no_overwrite_keeps_what_another_process_wrote_meanwhile(tmp_path, kind):
  path = tmp_path / "out"
  with pytest.raises(files.OutputExistsError, match="exists already"):
    with files.atomic_output(str(path), overwrite=False) as tmp:
      if kind == "file":
        open(tmp, "w").write("ours")
        path.write_text("theirs")
      else:
        os.mkdir(tmp)
        open(os.path.join(tmp, "a"), "w").write("ours")
        path.mkdir()
        (path / "a").write_text("theirs")
  assert os.listdir(tmp_path) == ["out"]
  assert (path if kind == "file" else path / "a").read_text() == "theirs"


def test_model_info_is_written_once_and_then_guards_the_workdir(tmp_path):
  info = {"image_shape": [32, 32, 1], "architecture": "sndcgan", "z_dim": 64,
          "z_distribution": "normal"}
  workdir.check_model_info(str(tmp_path), info, write=True)
  assert workdir.read_model_info(str(tmp_path)) == info
  workdir.check_model_info(str(tmp_path), info, write=True)  # The same model: fine.
  with pytest.raises(errors.WorkdirError, match="holds a different model"):
    workdir.check_model_info(str(tmp_path), {**info, "z_dim": 128}, write=True)


def test_model_info_of_an_older_workdir_without_z_distribution_still_matches(tmp_path):
  (tmp_path / workdir.MODEL_INFO).write_text(json.dumps(
      {"image_shape": [32, 32, 1], "architecture": "sndcgan", "z_dim": 64}))
  before = (tmp_path / workdir.MODEL_INFO).read_text()
  workdir.check_model_info(str(tmp_path), {"image_shape": [32, 32, 1], "architecture": "sndcgan",
                                           "z_dim": 64, "z_distribution": "normal"}, write=True)
  assert (tmp_path / workdir.MODEL_INFO).read_text() == before  # Only grows: not rewritten.
  with pytest.raises(errors.WorkdirError, match="holds a different model"):
    workdir.check_model_info(str(tmp_path), {"image_shape": [32, 32, 1],
                                             "architecture": "resnet_cifar", "z_dim": 64,
                                             "z_distribution": "normal"}, write=True)


def test_class_names_describe_the_data_not_the_model(tmp_path, caplog):
  # Renamed class folders, or a workdir from before the names were kept: the same model.
  info = {"image_shape": [8, 8, 3], "architecture": "sndcgan", "z_dim": 8,
          "z_distribution": "normal", "num_classes": 2}
  workdir.check_model_info(str(tmp_path), {**info, "class_names": ["cat", "dog"]}, write=True)
  with caplog.at_level(logging.WARNING):
    for other in ({**info, "class_names": ["cats", "dogs"]}, info):
      workdir.check_model_info(str(tmp_path), other, write=True)
  assert workdir.read_model_info(str(tmp_path))["class_names"] == ["cat", "dog"]
  # Renamed classes may be reordered ones: said once, for the renamed side only.
  assert caplog.text.count("the data's classes ['cats', 'dogs'] are not those this model "
                           "was trained on, ['cat', 'dog']") == 1
  with pytest.raises(errors.WorkdirError, match="holds a different model"):
    workdir.check_model_info(str(tmp_path), {**info, "num_classes": 3}, write=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny run's workdir with checkpoints 2, 4 and 6."""
  path = tmp_path_factory.mktemp("trained") / "w"
  _train(path, 6)
  return path


@pytest.fixture
def copy(trained, tmp_path):
  gin.clear_config()
  yield shutil.copytree(trained, tmp_path / "w")
  gin.clear_config()


def _checkpoints(path):
  return path / workdir.CHECKPOINTS


def test_a_checkpoint_is_rebuilt_with_the_config_in_force_at_its_step(copy):
  # A run resumed at step 4 with another setting recorded operative_config-4.gin.
  first = (copy / workdir.OPERATIVE_CONFIG).read_text()
  assert "dataset.data_dir = None" in first
  (copy / "operative_config-4.gin").write_text(
      first.replace("dataset.data_dir = None", "dataset.data_dir = '/data/resumed'"))
  # ckpt-4 was saved before the resume: steps 5 and on were trained with the new config.
  for step, config, data_dir in [(4, workdir.OPERATIVE_CONFIG, None),
                                 (6, "operative_config-4.gin", "/data/resumed"),
                                 (None, "operative_config-4.gin", "/data/resumed")]:
    gin.clear_config()
    restored = workdir.restore_for_inference(str(copy), step)
    assert restored.config_path == str(copy / config)
    assert gin.query_parameter("dataset.data_dir") == data_dir


def test_a_checkpoint_of_another_model_says_whose_it_is(copy, tmp_path):
  # Another run's checkpoint, given by path: here a run whose Ds were wider than the
  # config this workdir builds.
  other = tmp_path / "other"
  other.mkdir()
  for name in os.listdir(_checkpoints(copy)):
    if name.startswith("ckpt-6."):
      shutil.copy(_checkpoints(copy) / name, other / name)
  config = (copy / workdir.OPERATIVE_CONFIG).read_text()
  narrower = config.replace("'base_channels': 4}", "'base_channels': 2}")
  assert narrower != config
  (copy / workdir.OPERATIVE_CONFIG).write_text(narrower)
  with pytest.raises(checkpoints.CheckpointMismatchError) as raised:
    workdir.restore_for_inference(str(copy), str(other / "ckpt-6"))
  assert str(raised.value).endswith(
      f"it is not a checkpoint of the model in {copy} (its model_info.json and operative "
      "config); pass one of that workdir's checkpoints, or the workdir the checkpoint was "
      "trained in.")
  # Its own checkpoint, after its config was edited: the config is what is wrong.
  gin.clear_config()
  with pytest.raises(checkpoints.CheckpointMismatchError) as raised:
    workdir.restore_for_inference(str(copy), 6)
  assert str(raised.value).endswith(
      f"{copy}'s operative config no longer builds the model its checkpoints hold (was it "
      "edited?); undo that edit.")


def test_checkpoints_without_an_operative_config_say_how_to_get_one(copy):
  # Training stopped by a signal inside its first call, before the fix that writes the
  # config before any save.
  os.remove(copy / workdir.OPERATIVE_CONFIG)
  with pytest.raises(errors.WorkdirError) as raised:
    workdir.restore_for_inference(str(copy))
  assert str(raised.value) == (
      f"{str(copy)!r} has checkpoints but no operative_config.gin (training stopped before "
      "its first step was done); run its training command again, which resumes and writes "
      "it (with train.total_steps one higher if the run had reached it).")


def test_a_workdir_that_does_not_exist_is_named(tmp_path):
  with pytest.raises(errors.WorkdirError, match=r"workdir '.*typo' does not exist; pass a "
                                                r"training workdir, or train first"):
    workdir.restore_for_inference(str(tmp_path / "typo"))


def test_a_damaged_latest_checkpoint_is_named_with_the_steps_on_disk(copy):
  [data] = _checkpoints(copy).glob("ckpt-6.data-*")
  data.write_bytes(data.read_bytes()[:100])
  with pytest.raises(errors.WorkdirError) as raised:
    workdir.restore_for_inference(str(copy))
  assert str(raised.value) == (
      f"checkpoint {_checkpoints(copy) / 'ckpt-6'} cannot be read (IndexError: Read less bytes "
      "than requested); choose one with --checkpoint=N (on disk: 2, 4).")
  gin.clear_config()
  assert workdir.restore_for_inference(str(copy), 4).step == 4


@pytest.mark.parametrize("state", ["", "not { a proto"])
def test_without_a_usable_state_file_the_newest_on_disk_is_restored(copy, state):
  (_checkpoints(copy) / "checkpoint").write_text(state)
  restored = workdir.restore_for_inference(str(copy))
  assert restored.step == 6 and restored.checkpoint_path == str(_checkpoints(copy) / "ckpt-6")


def _rotate_when_read(monkeypatch, folder):
  """Makes a trainer's save of step 8 (keeping one checkpoint) happen as the first restore
  starts: ckpt-8 written, ckpt-2, -4 and -6 deleted, the state file updated."""
  restore = tf.train.Checkpoint.restore

  def rotate_then_restore(self, path, *args, **kwargs):
    if not (folder / "ckpt-8.index").exists():
      for name in os.listdir(folder):
        if name.startswith("ckpt-6."):
          shutil.copy(folder / name, folder / name.replace("ckpt-6", "ckpt-8"))
        if name.startswith(("ckpt-2.", "ckpt-4.", "ckpt-6.")):
          os.remove(folder / name)
      (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-8"\n'
                                         'all_model_checkpoint_paths: "ckpt-8"\n')
    return restore(self, path, *args, **kwargs)

  monkeypatch.setattr(tf.train.Checkpoint, "restore", rotate_then_restore)


def test_the_latest_deleted_while_read_is_replaced_by_the_new_latest(copy, monkeypatch):
  _rotate_when_read(monkeypatch, _checkpoints(copy))
  restored = workdir.restore_for_inference(str(copy))
  assert restored.checkpoint_path == str(_checkpoints(copy) / "ckpt-8")


def test_a_named_checkpoint_deleted_while_read_is_not_called_another_model(copy, monkeypatch):
  _rotate_when_read(monkeypatch, _checkpoints(copy))
  with pytest.raises(errors.WorkdirError) as raised:
    workdir.restore_for_inference(str(copy), 6)
  assert str(raised.value).startswith(
      f"checkpoint {_checkpoints(copy) / 'ckpt-6'} is no longer on disk (moved or "
      "deleted; a trainer running in ")
  assert str(raised.value).endswith("; choose one with --checkpoint=N (on disk: 8).")


def test_a_checkpoint_not_on_disk_lists_the_steps_that_are(copy):
  with pytest.raises(errors.WorkdirError) as raised:
    workdir.checkpoint_path(str(copy), 10)
  assert str(raised.value) == (f"no checkpoint {str(_checkpoints(copy) / 'ckpt-10')!r}; choose "
                               "one with --checkpoint=N (on disk: 2, 4, 6).")


def test_a_workdir_that_is_a_file_is_named_so_in_evaluation(tmp_path):
  (tmp_path / "run").write_text("")  # Once reported as "does not exist".
  with pytest.raises(errors.WorkdirError, match=re.escape(
      f"workdir '{tmp_path / 'run'}' is a file, not a folder; pass a training workdir.")):
    workdir.restore_for_inference(str(tmp_path / "run"))
