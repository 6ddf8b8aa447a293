"""One trainer per workdir (and one study runner per study folder): an advisory lock
file, `<workdir>/lock.json`.

Two trainers on one workdir would interleave checkpoints and summaries and delete each
other's checkpoints (CheckpointManager's `max_to_keep`). `WorkdirLock` makes the second
one refuse at once with a one-line `WorkdirError` naming the holder (host, pid, since
when) and the fix.

The lock file holds JSON: host, pid, the holder's process identity (boot id, pid
namespace, process start time; see `_process_identity`), the UTC time it was taken, the
command line and a random token. What holds where:

* Local (and NFS) disks: the file is created complete and atomically -- written to a
  private temporary name, then hard-linked to `lock.json`, which fails if it exists
  (falling back to O_CREAT|O_EXCL where hard links are not supported). Exactly one of two
  racing trainers wins.
* Object stores (gs://, s3://, ... through `tf.io.gfile`): there is no atomic
  create-if-absent, so it is best effort: check that the lock is absent, write it, read
  it back and compare the token. Two trainers that start within the same fraction of a
  second may both pass; one that starts later always refuses.
* A lock whose holder is gone is stale. On the same host (same hostname, boot and pid
  namespace), a holder whose pid is not running, or whose pid now belongs to a process
  started at another time (pid reuse: compared through /proc where it exists), is taken
  over with a logged warning. A holder on another host (or in another pid namespace, e.g.
  a restarted container) cannot be checked from here, so the holder proves it is alive:
  a thread refreshes the lock file's modification time every `heartbeat_s` seconds (60),
  and a lock not refreshed for `LEASE_BEATS` (10) of its holder's beats is stale too.
  Until then the trainer refuses, and the message says when the lock lapses and how to
  remove it at once. (A lock written without a heartbeat is never taken over from there.)
  A holder that finds its lock taken over (it was stopped or cut off for that long) marks
  it `lost`; `check_held` then raises, and training stops without saving. On object
  stores a refresh rewrites the file, so one that races a take-over can overwrite it (the
  same best-effort window as creation).
* The lock is advisory: only trainers that use it are kept out. `release` removes the file
  only if it still holds this lock's token.

Use it as a context manager around everything that writes to the workdir (`check_free`
refuses earlier, before a slow start-up, without creating anything):

    lock = WorkdirLock(workdir)
    lock.check_free()
    ...load data, build the model...
    with lock:
      ...train...
"""

import datetime
import json
import math
import os
import socket
import sys
import threading
import time
import uuid

from absl import logging

from ssgan_tf import errors

LOCK_NAME = "lock.json"
HEARTBEAT_S = 60
# A lock held elsewhere lapses after this many of its holder's beats without a refresh:
# enough to ride out a slow shared filesystem, short enough for a restarted job to get in.
LEASE_BEATS = 10


def _gfile():
  # Imported on first use, for object-store paths only: a trainer on a local workdir can
  # then check the lock before the seconds that importing TensorFlow takes.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile, tf.errors.NotFoundError


def _is_local(path):
  """Whether `path` is on a local (POSIX) filesystem, not a tf.io.gfile URL."""
  return "://" not in str(path) or str(path).startswith("file://")


def _local_path(path):
  path = str(path)
  return path[len("file://"):] if path.startswith("file://") else path


def _is_io_error(error):
  # OSError on local disks, tf.errors.OpError through tf.io.gfile; others are bugs.
  return isinstance(error, OSError) or type(error).__module__.startswith("tensorflow")


def _read_first_line(path):
  try:
    with open(path) as f:
      return f.readline().strip()
  except OSError:
    return None


def _process_start_ticks(pid):
  """The start time of process `pid` in clock ticks since boot (/proc), or None where
  /proc is not available or the process does not exist."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
  except OSError:
    return None
  # The command name (field 2) is in parentheses and may itself hold spaces or ')';
  # the fields after the last ')' start at field 3, and the start time is field 22.
  fields = stat[stat.rfind(")") + 2:].split()
  return int(fields[22 - 3])


def _pid_namespace():
  try:
    return os.stat("/proc/self/ns/pid").st_ino
  except OSError:
    return None


def _process_identity(pid):
  """What tells this process apart from a later one with the same pid: the boot, the pid
  namespace and the process start time (None each where /proc does not tell)."""
  return {"boot_id": _read_first_line("/proc/sys/kernel/random/boot_id"),
          "pid_namespace": _pid_namespace(), "start_ticks": _process_start_ticks(pid)}


def _pid_running(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # It exists, owned by another user.
  return True


def _lease_s(holder):
  """How long `holder`'s lock stays valid without a refresh, in seconds; None for a lock
  written without a heartbeat."""
  beat = holder.get("heartbeat_s")
  if isinstance(beat, (int, float)) and not isinstance(beat, bool) and beat > 0:
    return LEASE_BEATS * beat
  return None


def holder_state(holder, age_s=None):
  """Whether the process described by a lock's contents still holds it.

  Args:
    holder: the decoded lock file.
    age_s: seconds since the lock file was last modified (refreshed), or None if unknown.

  Returns:
    "alive", "dead" (the process is gone, or the lock lapsed: it is stale) or "unknown"
    (another host or pid namespace and a live lease: it cannot be checked from here).
  """
  state = _process_state(holder)
  lease = _lease_s(holder)
  if state == "unknown" and lease is not None and age_s is not None and age_s > lease:
    return "dead"
  return state


def _process_state(holder):
  here = _process_identity(os.getpid())
  if holder.get("host") != socket.gethostname():
    return "unknown"
  if holder.get("boot_id") and here["boot_id"] and holder["boot_id"] != here["boot_id"]:
    return "dead"  # The host has rebooted since: no process of that boot survives.
  if holder.get("pid_namespace") != here["pid_namespace"]:
    return "unknown"  # Another container on this host: its pids are not ours to check.
  pid = holder.get("pid")
  if not isinstance(pid, int) or not _pid_running(pid):
    return "dead"
  start = _process_start_ticks(pid)
  if start is not None and holder.get("start_ticks") is not None and start != holder["start_ticks"]:
    return "dead"  # The pid was reused by a process started after the lock was taken.
  return "alive"


def describe(holder):
  """'pid 123 on host h since 2026-01-02 03:04:05 UTC' for a lock's contents."""
  return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
          f"since {holder.get('since', '?')}")


def _duration(seconds, round_up=False):
  """'45 s', '10 min', '2.5 h', rounded down (or up)."""
  whole = math.ceil if round_up else math.floor
  if seconds < 120:
    return f"{whole(seconds)} s"
  if seconds < 7200:
    return f"{whole(seconds / 60)} min"
  return f"{whole(seconds / 360) / 10} h"


class WorkdirLock:
  """An exclusive, advisory lock on a training workdir (see the module docstring).

  Args:
    workdir: the workdir (local path or tf.io.gfile URL); created if missing.
    heartbeat_s: seconds between refreshes of the lock file while it is held (> 0).
    holder: what holds such locks, in the refusal ("trainer"; the study runner's folder:
      "study runner").
  """

  def __init__(self, workdir, heartbeat_s=HEARTBEAT_S, holder="trainer"):
    self.workdir = str(workdir)
    self.holder = holder
    self.path = os.path.join(self.workdir, LOCK_NAME)
    self.heartbeat_s = errors.check_range("heartbeat_s", heartbeat_s, minimum=0,
                                          exclusive_minimum=True)
    self.token = None  # Set while held.
    self.lost = False  # Set once a refresh finds the lock taken over or removed.
    self._data = None  # The lock file's contents while held.
    self._released = threading.Event()
    self._heartbeat = None  # The thread that refreshes the file while held.

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc_info):
    self.release()

  @property
  def held(self):
    return self.token is not None

  def acquire(self):
    """Takes the lock, or raises a one-line WorkdirError naming the holder and the fix."""
    if self.held:
      raise RuntimeError(f"{self.path} is already held by this WorkdirLock.")
    try:
      return self._acquire()
    except errors.WorkdirError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      if not _is_io_error(e):
        raise
      reason = getattr(e, "strerror", None) or type(e).__name__
      raise errors.WorkdirError(f"cannot create the lock file {self.path} ({reason}); "
                                "choose a writable --workdir.") from e

  def check_free(self):
    """Raises `acquire`'s one-line WorkdirError if a live trainer holds the lock; creates
    nothing. A cheap check for before the slow start-up (data, model): `acquire` is what
    keeps a second trainer out."""
    try:
      holder = self._read()
    except Exception as e:  # pylint: disable=broad-except
      if not _is_io_error(e):
        raise
      return  # Cannot be read from here: `acquire` reports why.
    if holder is None:
      return
    state = self._state(holder)
    if state != "dead":
      raise errors.WorkdirError(self._refusal(holder, state))

  def _acquire(self):
    if _is_local(self.workdir):
      os.makedirs(_local_path(self.workdir), exist_ok=True)
    else:
      _gfile()[0].makedirs(self.workdir)
    token = uuid.uuid4().hex
    contents = {
        "host": socket.gethostname(), "pid": os.getpid(), **_process_identity(os.getpid()),
        "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": " ".join(sys.argv)[:500], "token": token,
        "heartbeat_s": self.heartbeat_s}
    data = json.dumps(contents, indent=1) + "\n"
    # Twice at most: a stale lock is taken over once; losing the race that follows to
    # another trainer then refuses like any held lock.
    for _ in range(2):
      if self._create(data, token):
        self.token, self._data, self.lost = token, data, False
        self._released.clear()
        self._heartbeat = threading.Thread(target=self._beat_until_released, daemon=True,
                                           name=f"lock heartbeat {self.path}")
        self._heartbeat.start()
        return self
      holder = self._read()
      if holder is None:
        continue  # Released in the meantime.
      state = self._state(holder)
      if state != "dead":
        raise errors.WorkdirError(self._refusal(holder, state))
      if self._remove_stale(holder):
        gone = ("its holder is gone" if _process_state(holder) == "dead" else
                f"not refreshed for over {_duration(_lease_s(holder))}")
        logging.warning("workdir %s: took over the stale lock of %s (%s).", self.workdir,
                        describe(holder), gone)
    raise errors.WorkdirError(self._refusal(self._read() or {}, "alive"))

  def release(self):
    """Removes the lock file if it still holds this lock's token (idempotent)."""
    if not self.held:
      return
    self._released.set()
    # A beat in flight ends first (bounded: a hung filesystem must not hang the exit).
    self._heartbeat.join(timeout=10)
    token, self.token = self.token, None
    holder = self._read()
    if not isinstance(holder, dict) or holder.get("token") != token:
      logging.warning("workdir %s: the lock file %s no longer holds this process's lock "
                      "(removed or taken over); leaving it as it is.", self.workdir, self.path)
      return
    try:
      if _is_local(self.path):
        os.remove(_local_path(self.path))
      else:
        _gfile()[0].remove(self.path)
    except FileNotFoundError:
      pass

  def _beat_until_released(self):
    while not self._released.wait(self.heartbeat_s):
      if not self.beat():
        return

  def beat(self):
    """Refreshes the lock file's modification time if it still holds this lock (the
    heartbeat thread calls it every `heartbeat_s` seconds).

    Returns:
      False once the file holds another lock or none (it was taken over after a lapse,
      or removed; logged as an error), else True (also after a failed refresh, which is
      logged and tried again at the next beat).
    """
    try:
      holder = self._read()
      if not isinstance(holder, dict) or holder.get("token") != self.token:
        self.lost = True
        logging.error("%s", self._lost_message())
        return False
      if _is_local(self.path):
        os.utime(_local_path(self.path))
      else:
        with _gfile()[0].GFile(self.path, "w") as f:  # Object stores have no utime.
          f.write(self._data)
    except Exception as e:  # pylint: disable=broad-except
      if not _is_io_error(e):
        raise
      logging.warning("workdir %s: could not refresh the lock file %s (%s); trying again "
                      "in %s.", self.workdir, self.path,
                      getattr(e, "strerror", None) or type(e).__name__,
                      _duration(self.heartbeat_s))
    return True

  def check_held(self):
    """Raises a one-line WorkdirError once a refresh found this lock taken over or
    removed (`lost`): another trainer may be writing to the workdir."""
    if self.lost:
      raise errors.WorkdirError(self._lost_message() + " Stopped without saving; make sure "
                                "one trainer owns this workdir, then run again.")

  def _lost_message(self):
    lease = _duration(LEASE_BEATS * self.heartbeat_s)
    return (f"workdir {self.workdir!r}: the lock file {self.path} no longer holds this "
            f"trainer's lock (removed, or taken over after {lease} without a refresh); "
            "another trainer may be writing to this workdir.")

  def _state(self, holder):
    """holder_state of the lock file's contents `holder`, with the file's age."""
    if not isinstance(holder, dict):
      return "unknown"
    return holder_state(holder, self._age_s())

  def _age_s(self):
    """Seconds since the lock file was last modified; None if it cannot be told."""
    try:
      if _is_local(self.path):
        modified = os.stat(_local_path(self.path)).st_mtime
      else:
        modified = _gfile()[0].stat(self.path).mtime_nsec / 1e9
    except Exception as e:  # pylint: disable=broad-except
      if not _is_io_error(e):
        raise
      return None
    return time.time() - modified

  def _refusal(self, holder, state):
    if not isinstance(holder, dict):
      return (f"workdir {self.workdir!r} is locked by {self.path}, which cannot be read; if "
              f"no other {self.holder} uses this workdir, remove that file and run again.")
    who = f"workdir {self.workdir!r} is in use by another {self.holder} ({describe(holder)})"
    if state == "unknown":
      lease, age = _lease_s(holder), self._age_s()
      lapses = ("" if lease is None or age is None else
                f" (or run again in {_duration(max(lease - age, 1), round_up=True)}: it "
                f"lapses once {_duration(lease)} pass without a refresh)")
      return (f"{who}; if that {self.holder} has ended or its host is gone, remove {self.path} "
              f"and run again{lapses}, else use another --workdir.")
    return (f"{who}; wait for it to end or stop it (kill {holder.get('pid')}), or use another "
            "--workdir.")

  def _create(self, data, token):
    """Creates the lock file holding `data` if it does not exist; True if it did not."""
    if not _is_local(self.path):
      return self._create_best_effort(data, token)
    path = _local_path(self.path)
    temporary = f"{path}.{token}.tmp"
    with open(temporary, "w") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    try:
      # link() is atomic and fails if `path` exists, also on NFS; the file appears whole.
      os.link(temporary, path)
      return True
    except FileExistsError:
      return False
    except OSError:
      return self._create_exclusive(path, data)  # A filesystem without hard links.
    finally:
      os.remove(temporary)

  @staticmethod
  def _create_exclusive(path, data):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    return True

  def _create_best_effort(self, data, token):
    # Object stores: check, write, read back (see the module docstring for the window).
    gfile, _ = _gfile()
    if gfile.exists(self.path):
      return False
    with gfile.GFile(self.path, "w") as f:
      f.write(data)
    holder = self._read()
    return isinstance(holder, dict) and holder.get("token") == token

  def _read(self):
    """The lock file's contents (a dict), "unreadable", or None if there is none."""
    try:
      if _is_local(self.path):
        with open(_local_path(self.path)) as f:
          text = f.read()
      else:
        gfile, not_found = _gfile()
        try:
          with gfile.GFile(self.path) as f:
            text = f.read()
        except not_found:
          return None
    except FileNotFoundError:
      return None
    try:
      holder = json.loads(text)
    except ValueError:
      return "unreadable"
    return holder if isinstance(holder, dict) else "unreadable"

  def _remove_stale(self, holder):
    """Removes the lock file if it still holds the stale `holder`; True if it did.

    On local disks the file is first renamed to a private name and checked there, so
    that of two trainers taking over the same stale lock, neither removes the lock the
    other has just created.
    """
    if not _is_local(self.path):
      now = self._read()
      if isinstance(now, dict) and now.get("token") == holder.get("token"):
        _gfile()[0].remove(self.path)
        return True
      return False
    path = _local_path(self.path)
    private = f"{path}.stale-{uuid.uuid4().hex}"
    try:
      os.rename(path, private)
    except FileNotFoundError:
      return False
    with open(private) as f:
      try:
        moved = json.load(f)
      except ValueError:
        moved = None
    if isinstance(moved, dict) and moved.get("token") == holder.get("token"):
      os.remove(private)
      return True
    # We moved a lock that another trainer took meanwhile: put it back.
    try:
      os.link(private, path)
    except FileExistsError:
      pass
    os.remove(private)
    return False
