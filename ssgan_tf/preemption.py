"""SIGTERM or Ctrl-C during `fit`: checkpoint the current step, stop, exit with
errors.EXIT_CODE_PREEMPTED.

Preemptible and spot VMs, Cloud TPU VMs, Slurm (preemption, `scancel`, the time limit)
and Kubernetes (pod deletion, eviction, node drain) all ask a process to stop with
SIGTERM, then kill it with SIGKILL after a grace period: 30 s by default on GCE spot VMs
and Kubernetes (`terminationGracePeriodSeconds`), Slurm's `KillWait` (30 s by default).
One training step plus one checkpoint save has to fit in that time.

How it works:

* `PreemptionWatcher` replaces the SIGTERM and SIGINT handlers (and restores the previous
  ones) with one that only records that the signal came: no TensorFlow, no logging, no
  I/O. (CPython runs Python-level handlers in the main thread between bytecodes, so the
  handler may run in the middle of any Python code, e.g. inside TF's Python layers;
  setting an attribute is always safe there.) Further SIGTERMs change nothing: a wrapper
  script that forwards SIGTERM to a process group can deliver it twice. A second Ctrl-C
  (SIGINT after a recorded signal) raises KeyboardInterrupt, as Ctrl-C does by default:
  the usual "press again to abort at once, without saving".
* `SaveOnPreemption`, a Keras callback, looks at the flag after every call of the step
  (`on_train_batch_end`), again before the next one (`on_train_batch_begin`: a signal
  that came while the reporting callbacks ran, e.g. during a periodic evaluation, which
  gives up once the flag is set) and when `fit` ends. When it is set, it saves the
  step just finished through `save_fn()` (unless it is saved already) and raises
  `Preempted`, which ends `fit` at once: Keras 3's `fit` has no `finally`, so no later
  callback runs, not even `on_train_end` (no evaluation or sample grid eats into the
  grace period).
* `main` turns `Preempted` into its one-line message and exit status
  `errors.EXIT_CODE_PREEMPTED` (its `exit_code`); running the same command again resumes
  from that checkpoint.
* MultiWorkerMirroredStrategy: each worker gets its own SIGTERM, at its own time (or only
  one worker gets one). All workers must save the same step and stop together, or the
  others block in the next collective. So the flag is all-reduced across workers at every
  check (a SUM of one float per replica; about 3 ms on localhost). Every worker runs the
  same steps and so the same checks, in the same order: they all see the request at the
  same step, save it and raise.

Why not `tf.distribute.experimental.PreemptionCheckpointHandler`: it does work from a
Keras 3 callback (`save_checkpoint_if_preempted()` in `on_train_batch_end`, checked under
MultiWorkerMirroredStrategy with 2 workers: both saved at the step after the signal), but
  - on construction it restores the newest checkpoint itself (`restore_or_initialize`),
    bypassing this project's checks (a workdir of another model, unreadable checkpoints);
  - it adds a `checkpointed_runs` variable to the `tf.train.Checkpoint` it is given, so
    every checkpoint written before it was introduced fails
    `assert_existing_objects_matched()` ("Python objects that were not bound"), i.e. old
    workdirs would look like another model's;
  - it replaces the SIGTERM handler for good (never restores it), and under
    MultiWorkerMirroredStrategy that handler makes a coordination-service call;
  - its platform detection makes an HTTP request to the GCE metadata server at
    construction; on a GCE CPU VM it then logs "does not support" and does nothing; on a
    GCE GPU VM it ignores SIGTERM and polls the maintenance event, with a 1 h default
    grace period, and exits with 143 there (42 elsewhere) through `sys.exit`;
  - it counts its own calls as steps (a private run counter that Keras 3 does not keep;
    tf_keras' `BackupAndRestore(save_before_preemption=True)` did, through private
    attributes, and Keras 3 dropped that option).
The all-reduced flag gives the same guarantee (all workers save one agreed step) with
none of these, and works on one device and MirroredStrategy alike. For TPUStrategy the
coordinator is one process, so the local flag suffices.
"""

import signal
import threading

import keras
from absl import logging

from ssgan_tf import distribute
from ssgan_tf import errors


class Preempted(errors.UserError):
  """Training stopped on a termination signal after saving its current step.

  Attributes:
    step: the generator step training stopped at.
    checkpoint: the path of the checkpoint holding that step, or None if none could be
      written (e.g. the step's state was not finite).
    signal_name: e.g. "SIGTERM".
  """

  exit_code = errors.EXIT_CODE_PREEMPTED

  def __init__(self, step, checkpoint=None, signal_name="SIGTERM"):
    self.step, self.checkpoint, self.signal_name = step, checkpoint, signal_name
    saved = (f"saved {checkpoint}" if checkpoint else
             "nothing to save before the first step" if step == 0 else
             "nothing was saved at this step, the latest checkpoint is kept")
    super().__init__(f"stopped by {signal_name} at step {step}: {saved}; run the same "
                     "command again to resume.")


class PreemptionWatcher:
  """Records termination signals while installed; a context manager.

  Args:
    signals: the signals to catch (default SIGTERM and SIGINT, i.e. Ctrl-C; a SIGINT
      after the first signal raises KeyboardInterrupt).
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self.signals = tuple(signals)
    self._previous = {}
    self._received = None  # The first signal number caught; set by the handler only.

  @property
  def requested(self):
    """Whether a termination signal came while installed."""
    return self._received is not None

  @property
  def signal_name(self):
    return signal.Signals(self._received).name if self.requested else None

  @property
  def installed(self):
    return bool(self._previous)

  def _handle(self, signum, frame):
    del frame
    # Only this: see the module docstring.
    if self._received is None:
      self._received = signum
    elif signum == signal.SIGINT:
      raise KeyboardInterrupt  # A second Ctrl-C: abort without saving.

  def install(self):
    """Replaces the handlers of `signals`, remembering the previous ones."""
    if self.installed:
      return self
    if threading.current_thread() is not threading.main_thread():
      names = [signal.Signals(s).name for s in self.signals]
      logging.warning("not in the main thread: %s will not be caught, so training cannot "
                      "save its step on preemption.", names)
      return self
    for signum in self.signals:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def uninstall(self):
    """Restores the previous handlers (idempotent)."""
    for signum, previous in self._previous.items():
      # None: the previous handler was not installed from Python; the default is the
      # closest that Python can restore.
      signal.signal(signum, signal.SIG_DFL if previous is None else previous)
    self._previous = {}

  def __enter__(self):
    return self.install()

  def __exit__(self, exc_type, exc, traceback):
    self.uninstall()
    if self.requested and exc_type is None:
      logging.warning("%s came after the last check of this run; it had finished.",
                      self.signal_name)


class SaveOnPreemption(keras.callbacks.Callback):
  """Saves the current step and raises `Preempted` once `watcher` has seen a signal.

  Place it after the callback that saves checkpoints and before the reporting ones; see
  the module docstring.

  Args:
    watcher: an installed `PreemptionWatcher`.
    save_fn: `save_fn() -> path or None`: writes the checkpoint of the model's current
      step unless it is written already, and returns its path; None when the step must
      not be saved (e.g. non-finite). Under MultiWorkerMirroredStrategy it runs on every
      worker, like every save.
    strategy: the training strategy; under MultiWorkerMirroredStrategy with more than one
      worker, the workers agree through an all-reduce at each look at the flag (before
      and after every call of the step; every worker runs this callback).
  """

  def __init__(self, watcher, save_fn, strategy=None):
    super().__init__()
    self.watcher, self.save_fn, self.strategy = watcher, save_fn, strategy
    self._any_worker = None  # Built on first use.

  def on_train_batch_begin(self, batch, logs=None):
    self._stop_if_requested()

  def on_train_batch_end(self, batch, logs=None):
    self._stop_if_requested()

  def on_train_end(self, logs=None):
    self._stop_if_requested()

  def _stop_if_requested(self):
    if not self._requested():
      return
    step = self.model.step
    name = self.watcher.signal_name or "a peer worker's SIGTERM"
    logging.warning("%s: saving step %d and stopping.", name, step)
    path = self.save_fn()
    raise Preempted(step, path, name)

  def _requested(self):
    if self._any_worker is None:
      self._any_worker = distribute.any_worker_fn(self.strategy)
    return self._any_worker(self.watcher.requested)
