"""Unreadable checkpoints: skipped by name, newest readable one restored, files kept and
out of CheckpointManager's way; a readable checkpoint of another model is an error, not
skipped; a full disk while saving keeps the earlier checkpoints and says so in one line."""

import contextlib
import datetime
import gc
import logging
import os
import resource
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import checkpoints
from ssgan_tf import errors

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def _checkpoint(size=10):
  """A model-like checkpoint: a weight vector and a step counter."""
  return tf.train.Checkpoint(w=tf.Variable(tf.zeros([size])),
                             step=tf.Variable(0, dtype=tf.int64))


def _save_steps(directory, steps, size=10, max_to_keep=5):
  checkpoint = _checkpoint(size)
  manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=max_to_keep)
  for step in steps:
    checkpoint.w.assign(tf.fill([size], float(step)))
    checkpoint.step.assign(step)
    manager.save(checkpoint_number=step, check_interval=False)
  return manager


def _data_file(prefix):
  return f"{prefix}.data-00000-of-00001"


def _truncate(prefix):
  path = _data_file(prefix)
  os.truncate(path, os.path.getsize(path) // 2)


def _files(directory):
  return sorted(os.listdir(directory))


def test_truncated_newest_is_skipped_by_name_and_left_on_disk(tmp_path, caplog):
  _save_steps(tmp_path, [10, 20, 30])
  bad = str(tmp_path / "ckpt-30")
  _truncate(bad)
  before = {name: os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path)}
  checkpoint = _checkpoint()
  with caplog.at_level(logging.WARNING):
    path, skipped = checkpoints.restore_newest_readable(checkpoint, tmp_path)
  assert path == str(tmp_path / "ckpt-20") and int(checkpoint.step) == 20
  assert [p for p, _ in skipped] == [bad]
  assert skipped[0][1] == "IndexError: Read less bytes than requested"
  assert f"checkpoint {bad} cannot be read (IndexError" in caplog.text
  assert {name: os.path.getsize(tmp_path / name) for name in os.listdir(tmp_path)} == before


@pytest.mark.parametrize("damage", ["flip a byte", "remove the data shard", "empty index"])
def test_other_damage_is_skipped_too(tmp_path, damage):
  _save_steps(tmp_path, [1, 2])
  prefix = str(tmp_path / "ckpt-2")
  if damage == "flip a byte":
    with open(_data_file(prefix), "r+b") as f:
      f.seek(8)
      byte = f.read(1)
      f.seek(8)
      f.write(bytes([byte[0] ^ 0xFF]))
  elif damage == "remove the data shard":
    os.remove(_data_file(prefix))
  else:
    open(prefix + ".index", "w").close()
  path, skipped = checkpoints.restore_newest_readable(_checkpoint(), tmp_path)
  assert path == str(tmp_path / "ckpt-1") and [p for p, _ in skipped] == [prefix]


def test_all_unreadable_is_one_line_listing_them(tmp_path):
  _save_steps(tmp_path, [1, 2])
  for step in (1, 2):
    _truncate(tmp_path / f"ckpt-{step}")
  with pytest.raises(errors.WorkdirError) as raised:
    checkpoints.restore_newest_readable(_checkpoint(), tmp_path)
  message = str(raised.value)
  assert "\n" not in message
  assert message.startswith(f"no readable checkpoint in {tmp_path}: ckpt-2 (IndexError: Read "
                            "less bytes than requested); ckpt-1 (IndexError")
  assert "left on disk" in message and "move the whole folder away" in message


def test_another_model_is_a_distinct_error_and_not_skipped(tmp_path):
  _save_steps(tmp_path, [1, 2], size=10)
  for other in (_checkpoint(size=7),  # Another shape.
                tf.train.Checkpoint(w=tf.Variable(tf.zeros([10])), step=tf.Variable(0, tf.int64),
                                    extra=tf.Variable(1.0))):  # More objects.
    with pytest.raises(checkpoints.CheckpointMismatchError) as raised:
      checkpoints.restore_newest_readable(other, tmp_path)
    assert raised.value.path == str(tmp_path / "ckpt-2")  # The newest; older ones not tried.
    assert "does not match the configured model" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_no_checkpoint_restores_nothing(tmp_path):
  assert checkpoints.restore_newest_readable(_checkpoint(), tmp_path) == (None, [])
  assert checkpoints.restore_newest_readable(_checkpoint(), tmp_path / "none") == (None, [])


@pytest.mark.parametrize("state", ["missing", "garbage", "empty"])
def test_without_a_usable_state_file_the_index_files_are_listed(tmp_path, state):
  _save_steps(tmp_path, [5, 10, 40])  # 40 after 10: numbers, not names, give the order.
  state_file = tmp_path / "checkpoint"
  if state == "missing":
    os.remove(state_file)
  else:
    state_file.write_text("not { a proto" if state == "garbage" else "")
  assert checkpoints.list_checkpoints(tmp_path) == [
      str(tmp_path / f"ckpt-{n}") for n in (40, 10, 5)]
  _truncate(tmp_path / "ckpt-40")
  path, _ = checkpoints.restore_newest_readable(_checkpoint(), tmp_path)
  assert path == str(tmp_path / "ckpt-10")


def test_a_listed_checkpoint_whose_files_are_gone_is_only_dropped_from_the_list(tmp_path,
                                                                                 caplog):
  _save_steps(tmp_path, [10, 20])
  for name in os.listdir(tmp_path):
    if name.startswith("ckpt-20."):
      os.remove(tmp_path / name)  # Moved away by hand; the state file still lists it.
  path, skipped = checkpoints.restore_newest_readable(_checkpoint(), tmp_path)
  assert path == str(tmp_path / "ckpt-10") and [p for p, _ in skipped] == [
      str(tmp_path / "ckpt-20")]
  with caplog.at_level(logging.WARNING):
    assert checkpoints.quarantine(skipped, tmp_path, restored=path, now=NOW) == []
  assert f"checkpoint {tmp_path / 'ckpt-20'} has no files; dropped from the state file." in (
      caplog.text)
  assert "renamed" not in caplog.text and "left on disk" not in caplog.text
  assert checkpoints.list_checkpoints(tmp_path) == [str(tmp_path / "ckpt-10")]


def test_quarantined_checkpoint_survives_later_saves_at_its_step_and_beyond_max_to_keep(tmp_path):
  _save_steps(tmp_path, [10, 20, 30], max_to_keep=3)
  _truncate(tmp_path / "ckpt-30")
  damaged = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)
             if name.startswith("ckpt-30.")}
  checkpoint = _checkpoint()
  path, skipped = checkpoints.restore_newest_readable(checkpoint, tmp_path)
  renamed = checkpoints.quarantine(skipped, tmp_path, restored=path, now=NOW)
  new_prefix = str(tmp_path / "ckpt-30.unreadable-20260102T030405Z")
  assert renamed == [(str(tmp_path / "ckpt-30"), new_prefix)]
  assert tf.train.latest_checkpoint(tmp_path) == str(tmp_path / "ckpt-20")
  # Training goes on from step 20, through step 30 again, and past max_to_keep.
  manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)

  def kept_intact():
    return all((tmp_path / name.replace("ckpt-30", "ckpt-30.unreadable-20260102T030405Z")
                ).read_bytes() == data for name, data in damaged.items())

  checkpoint.step.assign(30)
  manager.save(checkpoint_number=30, check_interval=False)
  fresh = _checkpoint()
  fresh.restore(str(tmp_path / "ckpt-30")).assert_consumed()  # A new, good step 30.
  assert int(fresh.step) == 30 and kept_intact()
  for step in (40, 50, 60):
    checkpoint.step.assign(step)
    manager.save(checkpoint_number=step, check_interval=False)
  assert kept_intact()
  assert checkpoints.list_checkpoints(tmp_path) == [
      str(tmp_path / f"ckpt-{n}") for n in (60, 50, 40)]


@contextlib.contextmanager
def _small_disk(path, size):
  """A tmpfs of `size` mounted at `path` for the block; skips where that cannot be done."""
  if os.geteuid() != 0:
    pytest.skip("mounting a small tmpfs needs root")
  path.mkdir()
  mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True, check=False)
  if mount.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
  try:
    yield path
  finally:
    subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def file_size_limit(num_bytes):
  """`ulimit -f` for this process: a write past `num_bytes` fails with EFBIG (Python
  ignores the SIGXFSZ that would otherwise kill it)."""
  before = resource.getrlimit(resource.RLIMIT_FSIZE)
  resource.setrlimit(resource.RLIMIT_FSIZE, (num_bytes, before[1]))
  try:
    yield
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, before)


def test_a_file_size_limit_met_while_saving_is_one_line_and_keeps_the_earlier_ones(tmp_path):
  # TensorFlow reports EFBIG as an OutOfRangeError, which Keras took for the end of the
  # data when a callback's save raised it: training ended early without a word.
  checkpoint = _checkpoint(150_000)  # 600 kB of float32.
  manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=5)
  checkpoints.save_or_explain(manager, 1)
  with file_size_limit(100_000), pytest.raises(errors.WorkdirError) as raised:
    checkpoints.save_or_explain(manager, 2)
  message = str(raised.value)
  assert "\n" not in message
  assert message.startswith(
      f"a file size limit (e.g. `ulimit -f`) was reached: could not save step 2 in "
      f"{tmp_path}; the checkpoints before it are intact (latest: {tmp_path / 'ckpt-1'})")
  restored = _checkpoint(150_000)
  restored.restore(str(tmp_path / "ckpt-1")).assert_consumed()


def test_full_disk_keeps_the_earlier_checkpoints_and_says_so(tmp_path):
  size = 150_000  # float32: 600 kB per checkpoint; three fill a 2 MB disk.
  with _small_disk(tmp_path / "disk", "2m") as disk:
    checkpoint = _checkpoint(size)
    manager = tf.train.CheckpointManager(checkpoint, str(disk), max_to_keep=5)
    for step in (1, 2, 3):
      checkpoint.step.assign(step)
      checkpoints.save_or_explain(manager, step)
    checkpoint.step.assign(4)
    with pytest.raises(errors.WorkdirError) as raised:
      checkpoints.save_or_explain(manager, 4)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"the disk is full: could not save step 4 in {disk}; the "
                              f"checkpoints before it are intact (latest: {disk / 'ckpt-3'})")
    assert tf.train.latest_checkpoint(disk) == str(disk / "ckpt-3")
    for step in (3, 2, 1):
      restored = _checkpoint(size)
      restored.restore(str(disk / f"ckpt-{step}")).assert_consumed()
      assert int(restored.step) == step
    path, skipped = checkpoints.restore_newest_readable(_checkpoint(size), disk)
    assert path == str(disk / "ckpt-3") and skipped == []
    # With space again, the same step saves over whatever the failed save left.
    for name in os.listdir(disk):
      if name.startswith("ckpt-1."):
        os.remove(disk / name)
    assert checkpoints.save_or_explain(manager, 4) == str(disk / "ckpt-4")
    restored = _checkpoint(size)
    restored.restore(str(disk / "ckpt-4")).assert_consumed()
    np.testing.assert_array_equal(restored.w.numpy(), checkpoint.w.numpy())
    assert int(restored.step) == 4


def _on_disk(directory):
  return sorted(int(name[len("ckpt-"):-len(".index")]) for name in os.listdir(directory)
                if name.startswith("ckpt-") and name.endswith(".index")
                and "unreadable" not in name)


def test_after_setting_one_aside_the_older_checkpoints_go_on_rotating(tmp_path):
  _save_steps(tmp_path, [10, 20, 30], max_to_keep=3)
  _truncate(tmp_path / "ckpt-30")
  checkpoint = _checkpoint()
  path, skipped = checkpoints.restore_newest_readable(checkpoint, tmp_path)
  checkpoints.quarantine(skipped, tmp_path, restored=path, now=NOW)
  manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
  for step in (30, 40, 50):
    manager.save(checkpoint_number=step, check_interval=False)
  assert _on_disk(tmp_path) == [30, 40, 50]  # 10 and 20 rotated out, as without the damage.
  assert checkpoints.list_checkpoints(tmp_path) == [
      str(tmp_path / f"ckpt-{n}") for n in (50, 40, 30)]


@pytest.mark.parametrize("state", ["empty", "garbage", "missing"])
def test_an_unusable_state_file_is_set_aside_and_rebuilt_from_the_checkpoints(tmp_path, state):
  _save_steps(tmp_path, [10, 20, 30], max_to_keep=3)
  state_file = tmp_path / "checkpoint"
  if state == "missing":
    os.remove(state_file)
  else:
    state_file.write_text("" if state == "empty" else "not { a proto")
  checkpoint = _checkpoint()
  path, skipped = checkpoints.restore_newest_readable(checkpoint, tmp_path)
  assert path == str(tmp_path / "ckpt-30") and skipped == []
  checkpoints.quarantine(skipped, tmp_path, restored=path, now=NOW)
  assert (tmp_path / "checkpoint.unreadable-20260102T030405Z").exists() == (state != "missing")
  manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
  assert manager.latest_checkpoint == path
  manager.save(checkpoint_number=40, check_interval=False)
  assert _on_disk(tmp_path) == [20, 30, 40]


def test_saves_cut_short_are_removed_before_training_and_never_by_readers(tmp_path):
  _save_steps(tmp_path, [10, 20])
  leftover = tmp_path / "ckpt-10_temp"
  leftover.mkdir()
  (leftover / "part-00000-of-00001.data-00000-of-00001.tempstate123").write_bytes(b"x" * 99)
  (tmp_path / "notes_temp").mkdir()  # Not a checkpoint's: left alone.
  checkpoints.restore_newest_readable(_checkpoint(), tmp_path)  # What eval/export do.
  assert leftover.exists()
  checkpoints.quarantine([], tmp_path, restored=str(tmp_path / "ckpt-20"))
  assert not leftover.exists() and (tmp_path / "notes_temp").exists()
  assert _on_disk(tmp_path) == [10, 20]


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_restore_tells_an_unreadable_checkpoint_from_another_model(tmp_path, damage):
  _save_steps(tmp_path, [1, 2])
  prefix = str(tmp_path / "ckpt-2")
  if damage == "truncate":
    _truncate(prefix)
  else:  # As a trainer's rotation does, while a reader had listed it.
    for name in os.listdir(tmp_path):
      if name.startswith("ckpt-2."):
        os.remove(tmp_path / name)
  with pytest.raises(checkpoints.UnreadableCheckpointError) as raised:
    checkpoints.restore(_checkpoint(), prefix)
  assert raised.value.path == prefix
  assert raised.value.reason.startswith(
      "IndexError: Read less bytes" if damage == "truncate" else "NotFoundError")


def test_a_long_mismatch_detail_is_cut_after_a_word(tmp_path):
  name = "generator/block_with_a_long_name_" * 8  # TF's message ends with it.
  tf.train.Checkpoint(w=tf.Variable(tf.zeros([10]))).write(str(tmp_path / "c"))
  other = tf.train.Checkpoint(w=tf.Variable(tf.zeros([7]), name=name))
  with pytest.raises(ValueError) as tf_error:
    other.read(str(tmp_path / "c")).assert_existing_objects_matched()
  full = str(tf_error.value).splitlines()[0]
  with pytest.raises(checkpoints.CheckpointMismatchError) as raised:
    checkpoints.restore(other, str(tmp_path / "c"))
  detail = raised.value.detail
  assert detail.startswith("ValueError: ") and detail.endswith(" ...")
  cut = detail[len("ValueError: "):-len(" ...")]
  assert full.startswith(cut) and full[len(cut)] == " "  # Whole words only.


def test_values_the_model_lacks_restore_without_tensorflows_warning_lines(tmp_path, caplog,
                                                                          monkeypatch):
  # A model without the average of G restored a checkpoint with one after 42 "Value in
  # checkpoint could not be found" lines (TensorFlow's, when the checkpoint object goes).
  _save_steps(tmp_path, [10])
  partial = tf.train.Checkpoint(w=tf.Variable(tf.zeros([10])))  # No step counter.
  monkeypatch.setattr(tf.get_logger(), "propagate", True)  # Its lines reach caplog.
  with caplog.at_level(logging.WARNING, logger="tensorflow"):
    checkpoints.restore(partial, str(tmp_path / "ckpt-10"))
    assert partial.w.numpy().tolist() == [10.0] * 10
    del partial  # TensorFlow warns when the checkpoint object goes.
    gc.collect()
  assert "could not be found" not in caplog.text
  with pytest.raises(checkpoints.CheckpointMismatchError):  # Still: every model value.
    checkpoints.restore(tf.train.Checkpoint(w=tf.Variable(tf.zeros([10])),
                                            extra=tf.Variable(0.0)), str(tmp_path / "ckpt-10"))


def test_a_failed_restore_leaves_no_tensorflow_warning_for_later(tmp_path, caplog,
                                                                 monkeypatch):
  # A resume with other widths printed "... being deleted with unrestored values" and
  # "Value in checkpoint could not be found ... save_counter" after the one-line error.
  _save_steps(tmp_path, [10])
  other = _checkpoint(size=7)  # The same values, one of another shape.
  monkeypatch.setattr(tf.get_logger(), "propagate", True)
  with caplog.at_level(logging.WARNING, logger="tensorflow"):
    with pytest.raises(checkpoints.CheckpointMismatchError):
      checkpoints.restore(other, str(tmp_path / "ckpt-10"))
    del other
    gc.collect()
  assert "unrestored values" not in caplog.text and "could not be found" not in caplog.text
