"""SIGTERM (or Ctrl-C) during fit: the step just finished is saved, fit stops with Preempted, the
previous handler comes back; a SIGTERMed trainer exits with EXIT_CODE_PREEMPTED and its
checkpoint holds exactly its state at that step, on one device and on 2 workers."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import preemption

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import preemption_child  # noqa: E402  pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = os.path.join(ROOT, "tests", "preemption_child.py")
TIMEOUT = 180  # Seconds for a child trainer (TF import and start-up on a busy machine).


def _sentinel_handler(signum, frame):
  raise AssertionError("the previous SIGTERM handler ran")


@pytest.fixture
def sentinel():
  """A known previous SIGTERM handler, to check that it is restored."""
  previous = signal.signal(signal.SIGTERM, _sentinel_handler)
  yield _sentinel_handler
  signal.signal(signal.SIGTERM, previous)


class _SigtermAt(keras.callbacks.Callback):

  def __init__(self, step, signum=signal.SIGTERM):
    super().__init__()
    self.step, self.signum = step, signum

  def on_train_batch_end(self, batch, logs=None):
    if int(self.model.optimizer.iterations.numpy()) == self.step:
      os.kill(os.getpid(), self.signum)


def _fit(model, callbacks, steps=10):
  model.fit(preemption_child.dataset(), steps_per_epoch=steps, epochs=1,
            callbacks=callbacks, verbose=0, shuffle=False)


def test_sigterm_saves_that_step_stops_fit_and_restores_the_handler(tmp_path, sentinel):
  model, checkpoint = preemption_child.build(tf.distribute.get_strategy())
  manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
  saved = []

  def save():
    saved.append((model.step, [v.numpy() for v in model.weights]))
    return manager.save(checkpoint_number=model.step, check_interval=False)

  with preemption.PreemptionWatcher() as watcher:
    assert signal.getsignal(signal.SIGTERM) is not sentinel
    with pytest.raises(preemption.Preempted) as raised:
      _fit(model, [_SigtermAt(3), preemption.SaveOnPreemption(watcher, save)])
  assert signal.getsignal(signal.SIGTERM) is sentinel
  assert [step for step, _ in saved] == [3]
  assert int(model.optimizer.iterations.numpy()) == 3  # fit stopped there.
  assert raised.value.step == 3 and raised.value.checkpoint == str(tmp_path / "ckpt-3")
  assert str(raised.value) == (f"stopped by SIGTERM at step 3: saved {tmp_path / 'ckpt-3'}; "
                               "run the same command again to resume.")
  fresh, fresh_checkpoint = preemption_child.build(tf.distribute.get_strategy())
  fresh_checkpoint.restore(manager.latest_checkpoint).assert_consumed()
  assert int(fresh.optimizer.iterations.numpy()) == 3
  for restored, at_save in zip(fresh.weights, saved[0][1]):
    np.testing.assert_array_equal(restored.numpy(), at_save)


def test_without_a_signal_nothing_is_saved_and_the_handler_comes_back(sentinel):
  model, _ = preemption_child.build(tf.distribute.get_strategy())
  saved = []
  with preemption.PreemptionWatcher() as watcher:
    _fit(model, [preemption.SaveOnPreemption(watcher, lambda: saved.append(1))], steps=3)
  assert saved == [] and not watcher.requested
  assert signal.getsignal(signal.SIGTERM) is sentinel


def test_handler_comes_back_when_fit_fails(sentinel):
  class Fail(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      raise RuntimeError("boom")

  model, _ = preemption_child.build(tf.distribute.get_strategy())
  with pytest.raises(RuntimeError, match="boom"):
    with preemption.PreemptionWatcher() as watcher:
      _fit(model, [Fail(), preemption.SaveOnPreemption(watcher, lambda: None)])
  assert signal.getsignal(signal.SIGTERM) is sentinel


def test_a_step_that_must_not_be_saved_says_so(sentinel):
  model, _ = preemption_child.build(tf.distribute.get_strategy())
  with preemption.PreemptionWatcher() as watcher:
    with pytest.raises(preemption.Preempted, match="at step 2: nothing was saved at this "
                       "step, the latest checkpoint is kept"):
      _fit(model, [_SigtermAt(2), preemption.SaveOnPreemption(watcher, lambda: None)])


def test_ctrl_c_saves_like_sigterm_and_its_handler_comes_back():
  model, _ = preemption_child.build(tf.distribute.get_strategy())
  saved = []
  # Python's default, or SIG_IGN where the suite was started in the background of a shell.
  before = signal.getsignal(signal.SIGINT)
  with preemption.PreemptionWatcher() as watcher:
    with pytest.raises(preemption.Preempted) as raised:
      _fit(model, [_SigtermAt(2, signal.SIGINT),
                   preemption.SaveOnPreemption(watcher, lambda: saved.append(model.step))])
  assert saved == [2] and raised.value.exit_code == errors.EXIT_CODE_PREEMPTED
  assert str(raised.value).startswith("stopped by SIGINT at step 2: nothing was saved")
  assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_aborts_at_once():
  watcher = preemption.PreemptionWatcher()
  watcher._handle(signal.SIGINT, None)
  watcher._handle(signal.SIGTERM, None)  # A repeated SIGTERM changes nothing.
  with pytest.raises(KeyboardInterrupt):
    watcher._handle(signal.SIGINT, None)
  assert watcher.signal_name == "SIGINT"


def test_a_signal_during_the_reporting_callbacks_stops_before_the_next_step(sentinel):
  # _SigtermAt after SaveOnPreemption: the signal comes while, e.g., an evaluation runs.
  model, _ = preemption_child.build(tf.distribute.get_strategy())
  saved = []
  with preemption.PreemptionWatcher() as watcher:
    with pytest.raises(preemption.Preempted) as raised:
      _fit(model, [preemption.SaveOnPreemption(watcher, lambda: saved.append(model.step)),
                   _SigtermAt(3)])
  assert saved == [3] and raised.value.step == 3
  assert int(model.optimizer.iterations.numpy()) == 3  # No step after the signal.


def test_the_handler_only_records_the_first_signal():
  watcher = preemption.PreemptionWatcher(signals=(signal.SIGTERM, signal.SIGUSR1))
  watcher._handle(signal.SIGUSR1, None)
  watcher._handle(signal.SIGTERM, None)
  assert watcher.requested and watcher.signal_name == "SIGUSR1"


def _start(workdir, announce_step, tf_config=None):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  env.pop("TF_CONFIG", None)
  if tf_config:
    env["TF_CONFIG"] = json.dumps(tf_config)
  return subprocess.Popen([sys.executable, CHILD, str(workdir), str(announce_step)], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(child):
  """The child's next stdout line; kills it if it takes longer than TIMEOUT."""
  watchdog = threading.Timer(TIMEOUT, child.kill)
  watchdog.start()
  try:
    return child.stdout.readline()
  finally:
    watchdog.cancel()


def _checkpoint_matches(prefix, weights_file):
  """Restores `prefix` into a fresh model; True if it equals the saved weights."""
  model, checkpoint = preemption_child.build(tf.distribute.get_strategy())
  checkpoint.restore(prefix).assert_consumed()
  with np.load(weights_file) as saved:
    return all(np.array_equal(v.numpy(), saved[f"arr_{i}"]) for i, v in enumerate(model.weights))


def test_sigtermed_trainer_exits_with_the_preempted_code_and_its_step_saved(tmp_path):
  child = _start(tmp_path, 4)
  try:
    line = _wait_for_line(child)
    assert line == "reached 4\n", child.stderr.read()
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=TIMEOUT)
  finally:
    child.kill()
  assert child.returncode == errors.EXIT_CODE_PREEMPTED, stderr
  assert "stopped by SIGTERM at step 4: saved" in stderr
  prefix = str(tmp_path / "checkpoints" / "ckpt-4")
  assert tf.train.latest_checkpoint(tmp_path / "checkpoints") == prefix
  assert _checkpoint_matches(prefix, tmp_path / "weights_4.npz")


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_sigterm_to_one_worker_stops_both_at_the_same_saved_step(tmp_path):
  cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
  workers = [_start(tmp_path, 3, {"cluster": cluster, "task": {"type": "worker", "index": i}})
             for i in range(2)]
  try:
    line = _wait_for_line(workers[1])  # Only worker 1 announces, and only it is signalled.
    assert line == "reached 3\n", workers[1].stderr.read()
    workers[1].send_signal(signal.SIGTERM)
    results = [w.communicate(timeout=TIMEOUT) for w in workers]
  finally:
    for worker in workers:
      worker.kill()  # A worker whose peer died would wait for it forever.
  for worker, (_, stderr) in zip(workers, results):
    assert worker.returncode == errors.EXIT_CODE_PREEMPTED, stderr
  assert "stopped by a peer worker's SIGTERM at step 3" in results[0][1]
  assert "stopped by SIGTERM at step 3" in results[1][1]
  for directory in ("checkpoints", "worker_1"):
    prefix = str(tmp_path / directory / "ckpt-3")
    assert tf.train.latest_checkpoint(tmp_path / directory) == prefix
    assert _checkpoint_matches(prefix, tmp_path / "weights_3.npz")
