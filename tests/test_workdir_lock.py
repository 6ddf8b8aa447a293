"""WorkdirLock: one trainer per workdir; stale locks of gone processes are taken over,
live ones (here or on another host) never are, and release leaves nothing behind."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from ssgan_tf import errors
from ssgan_tf import workdir_lock
from ssgan_tf.workdir_lock import WorkdirLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A second trainer: takes the lock on argv[1], says so on stdout, holds it until its stdin
# closes. On refusal it prints the one-line message to stderr and exits 1.
HOLDER = """
import sys
from ssgan_tf import errors
from ssgan_tf.workdir_lock import WorkdirLock
try:
  lock = WorkdirLock(sys.argv[1]).acquire()
except errors.WorkdirError as e:
  print(e, file=sys.stderr)
  sys.exit(1)
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def _holder(workdir):
  return subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def _write_lock(workdir, **fields):
  holder = {"host": socket.gethostname(), "pid": 1, "since": "2026-01-01 00:00:00 UTC",
            "token": "old", **workdir_lock._process_identity(os.getpid()), **fields}
  with open(os.path.join(workdir, "lock.json"), "w") as f:
    json.dump(holder, f)
  return holder


def _token(workdir):
  with open(os.path.join(workdir, "lock.json")) as f:
    return json.load(f)["token"]


def test_second_trainer_in_another_process_refuses_naming_the_holder(tmp_path):
  with WorkdirLock(tmp_path):
    child = _holder(tmp_path)
    _, stderr = child.communicate(timeout=60)
  assert child.returncode == 1
  message = stderr.strip()
  assert "\n" not in message
  holder = f"pid {os.getpid()} on host {socket.gethostname()} since "
  assert f"in use by another trainer ({holder}" in message
  assert f"kill {os.getpid()}" in message and "another --workdir" in message


def test_lock_of_a_live_process_is_not_removed(tmp_path):
  child = _holder(tmp_path)
  try:
    assert child.stdout.readline() == "locked\n"
    with pytest.raises(errors.WorkdirError, match=f"pid {child.pid} on host"):
      WorkdirLock(tmp_path).acquire()
    with open(tmp_path / "lock.json") as f:
      assert json.load(f)["pid"] == child.pid
  finally:
    child.stdin.close()
    assert child.wait(timeout=60) == 0
  assert os.listdir(tmp_path) == []  # The child released it.


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
  dead = subprocess.Popen([sys.executable, "-c", ""])
  dead.wait()
  _write_lock(tmp_path, pid=dead.pid, start_ticks=None)
  with caplog.at_level(logging.WARNING):
    with WorkdirLock(tmp_path) as lock:
      assert _token(tmp_path) == lock.token
  assert f"took over the stale lock of pid {dead.pid}" in caplog.text
  assert os.listdir(tmp_path) == []


def test_pid_reused_by_a_later_process_counts_as_stale(tmp_path):
  if workdir_lock._process_start_ticks(os.getpid()) is None:
    pytest.skip("no /proc: process start times cannot be compared here")
  # The pid runs (it is this test), but it was started at another time than the holder.
  ticks = workdir_lock._process_start_ticks(os.getpid())
  _write_lock(tmp_path, pid=os.getpid(), start_ticks=ticks - 1)
  with WorkdirLock(tmp_path) as lock:
    assert _token(tmp_path) == lock.token


def test_lock_from_another_host_refuses_and_says_how_to_remove_it(tmp_path):
  _write_lock(tmp_path, host="elsewhere", pid=os.getpid())
  with pytest.raises(errors.WorkdirError) as raised:
    WorkdirLock(tmp_path).acquire()
  assert (f"pid {os.getpid()} on host elsewhere since 2026-01-01 00:00:00 UTC); if that "
          f"trainer has ended or its host is gone, remove {tmp_path / 'lock.json'}"
          ) in str(raised.value)
  assert _token(tmp_path) == "old"


def test_release_leaves_no_file_and_keeps_a_lock_that_is_not_ours(tmp_path):
  lock = WorkdirLock(tmp_path / "new").acquire()  # Creates the workdir.
  lock.release()
  lock.release()  # Idempotent.
  assert os.listdir(tmp_path / "new") == []
  lock = WorkdirLock(tmp_path).acquire()
  _write_lock(tmp_path, token="someone else's")
  lock.release()
  assert _token(tmp_path) == "someone else's"


def test_object_store_path_works_through_gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  workdir = "ram://workdir_lock_test"
  with WorkdirLock(workdir) as lock:
    assert tf.io.gfile.exists(lock.path)
    with pytest.raises(errors.WorkdirError, match="in use by another trainer"):
      WorkdirLock(workdir).acquire()
  assert not tf.io.gfile.exists(f"{workdir}/lock.json")


def test_unwritable_workdir_is_a_one_line_error(tmp_path):
  if os.geteuid() == 0:
    blocked = tmp_path / "file"  # Root writes anywhere: a file where the workdir should be.
    blocked.write_text("")
    workdir = blocked / "workdir"
  else:
    os.chmod(tmp_path, 0o500)
    workdir = tmp_path / "workdir"
  with pytest.raises(errors.WorkdirError, match="cannot create the lock file .*writable --workdir"):
    WorkdirLock(workdir).acquire()


def test_check_free_refuses_like_acquire_and_creates_nothing(tmp_path):
  dead = subprocess.Popen([sys.executable, "-c", ""])
  dead.wait()
  WorkdirLock(tmp_path / "new").check_free()
  (tmp_path / "a_file").write_text("")
  WorkdirLock(tmp_path / "a_file" / "w").check_free()  # Unreadable: acquire will say why.
  assert sorted(os.listdir(tmp_path)) == ["a_file"]
  _write_lock(tmp_path, pid=dead.pid, start_ticks=None)
  WorkdirLock(tmp_path).check_free()  # Stale: acquire takes it over.
  _write_lock(tmp_path, host="elsewhere", pid=os.getpid())
  with pytest.raises(errors.WorkdirError) as early:
    WorkdirLock(tmp_path).check_free()
  with pytest.raises(errors.WorkdirError) as late:
    WorkdirLock(tmp_path).acquire()
  assert str(early.value) == str(late.value)
  assert _token(tmp_path) == "old"


def _set_age(workdir, seconds):
  then = time.time() - seconds
  os.utime(os.path.join(workdir, "lock.json"), (then, then))


def _age(workdir):
  return time.time() - os.stat(os.path.join(workdir, "lock.json")).st_mtime


@pytest.mark.parametrize("elsewhere", [{"host": "elsewhere"}, {"pid_namespace": -1}],
                         ids=["another host", "another container"])
def test_lock_held_elsewhere_lapses_once_its_holder_stops_refreshing_it(
    tmp_path, caplog, elsewhere):
  _write_lock(tmp_path, pid=os.getpid(), heartbeat_s=60, **elsewhere)
  _set_age(tmp_path, 590)  # Still within 10 beats: its holder may be alive.
  with pytest.raises(errors.WorkdirError) as raised:
    WorkdirLock(tmp_path).check_free()
  assert ("and run again (or run again in 10 s: it lapses once 10 min pass without a "
          "refresh), else use another --workdir.") in str(raised.value)
  assert _token(tmp_path) == "old"
  _set_age(tmp_path, 610)
  with caplog.at_level(logging.WARNING):
    with WorkdirLock(tmp_path) as lock:
      assert _token(tmp_path) == lock.token
  assert (f"took over the stale lock of pid {os.getpid()} on host "
          f"{elsewhere.get('host', socket.gethostname())}") in caplog.text
  assert "(not refreshed for over 10 min)" in caplog.text


def test_lock_held_elsewhere_without_a_heartbeat_never_lapses(tmp_path):
  _write_lock(tmp_path, host="elsewhere", pid=os.getpid())  # Written before heartbeats.
  _set_age(tmp_path, 30 * 24 * 3600)
  with pytest.raises(errors.WorkdirError, match="its host is gone, remove .* and run again, "
                     "else use another --workdir"):
    WorkdirLock(tmp_path).acquire()
  assert _token(tmp_path) == "old"


def test_holder_refreshes_its_lock_until_released(tmp_path):
  lock = WorkdirLock(tmp_path, heartbeat_s=0.05).acquire()
  with open(tmp_path / "lock.json") as f:
    assert json.load(f)["heartbeat_s"] == 0.05
  _set_age(tmp_path, 3600)
  deadline = time.monotonic() + 60
  while _age(tmp_path) > 60:  # The heartbeat thread refreshes it within a beat or so.
    assert time.monotonic() < deadline, "the lock file was not refreshed"
    time.sleep(0.01)
  lock.release()
  assert not [t for t in threading.enumerate() if t.name.startswith("lock heartbeat")]
  assert os.listdir(tmp_path) == []


def test_a_lock_found_taken_over_stops_training_before_the_next_save(tmp_path, caplog):
  from ssgan_tf import callbacks  # pylint: disable=g-import-not-at-top
  lock = WorkdirLock(tmp_path, heartbeat_s=3600).acquire()
  stop = callbacks.StopIfLockLost(lock)
  _set_age(tmp_path, 3600)
  assert lock.beat() and _age(tmp_path) < 60
  stop.on_train_batch_end(0)  # Held: training goes on.
  _write_lock(tmp_path, host="elsewhere", token="taken over")
  _set_age(tmp_path, 3600)
  with caplog.at_level(logging.ERROR):
    assert not lock.beat()
  assert _age(tmp_path) > 3000  # Another trainer's lock is left as it is.
  assert "no longer holds this trainer's lock" in caplog.text
  with pytest.raises(errors.WorkdirError, match=r"another trainer may be writing to this "
                     r"workdir\. Stopped without saving; make sure one trainer owns"):
    stop.on_train_batch_end(0)
  lock.release()
  assert _token(tmp_path) == "taken over"


def test_heartbeat_must_be_positive(tmp_path):
  with pytest.raises(errors.ConfigError, match=r"heartbeat_s must be > 0; got 0"):
    WorkdirLock(tmp_path, heartbeat_s=0)
