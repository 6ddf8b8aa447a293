"""Errors that are the user's to fix, apart from bugs.

Everything raised for bad input -- a config value out of range, a missing or unprepared
data set, a workdir that holds another model, an export that exists -- derives from
`UserError`; its message is one line that names what is wrong and how to fix it. `main`
and the tools print that line and exit with the error's `exit_code` (1; 75 for a stop on
a signal, `Preempted`). Any other exception is a bug (or a TensorFlow failure) and keeps
its traceback.

The subclasses that are about a bad value also derive from ValueError, so that library
callers may catch them as such.
"""

import contextlib
import sys

from absl import logging

# EX_TEMPFAIL (sysexits.h: "temporary failure; the user is invited to retry"): a program
# stopped cleanly (training at a saved step) and should be started again. Distinct from 1
# (a user error: retrying the same command cannot help), from 0 (done) and from 143 = 128
# + SIGTERM, which is what a wrapper shell or the container runtime reports for a process
# that SIGTERM killed before it could save (TF's own handler also uses 143 on GCP), so a
# scheduler can tell "saved, requeue me" from "killed". To requeue on it: Slurm
# `RequeueExit=75` in slurm.conf (or `[ $? -eq 75 ] && scontrol requeue $SLURM_JOB_ID` in
# the batch script); a Kubernetes Job `podFailurePolicy` rule `action: Ignore`,
# `onExitCodes: {operator: In, values: [75]}` (the retry does not count against
# `backoffLimit`); or a shell loop
# `until python -m ssgan_tf.main ...; do [ $? -eq 75 ] || break; done`.
EXIT_CODE_PREEMPTED = 75


class UserError(Exception):
  """Bad input, config or workdir: the one-line message says what to change.

  `exit_code` is the exit status of a command-line program that stops on it.
  """
  exit_code = 1


class ConfigError(UserError, ValueError):
  """A configuration value (gin binding, flag, argument) that cannot work."""


class DataError(UserError, ValueError):
  """The requested data is missing, unprepared or unreadable."""


class WorkdirError(UserError, ValueError):
  """The workdir cannot be used as asked (unwritable, another model's, locked, ...)."""


class ExportError(UserError, ValueError):
  """An export cannot be written as asked (e.g. it exists already)."""


class ClassifierUnavailableError(UserError, ValueError):
  """A metric's classifier (e.g. Inception) cannot be loaded here."""


class TrainingDiverged(UserError):
  """A non-finite loss or weight stopped training; the last good checkpoint is kept."""


def check_range(name, value, *, minimum=None, maximum=None, integer=False,
                exclusive_minimum=False, exclusive_maximum=False):
  """Returns `value` if it is a number in range, else raises a one-line ConfigError.

  Args:
    name: the binding or argument as the user writes it, e.g. "train.log_every".
    value: the value read.
    minimum, maximum: inclusive bounds (None: unbounded); `exclusive_minimum` and
      `exclusive_maximum` make them exclusive (e.g. a learning rate > 0).
    integer: the value must be an int (bool is not accepted).
  """
  kind = "an integer" if integer else "a number"
  is_number = isinstance(value, int) if integer else isinstance(value, (int, float))
  if isinstance(value, bool) or not is_number or value != value:  # NaN != NaN.
    raise ConfigError(f"{name} must be {kind}; got {value!r}.")
  low_ok = minimum is None or (value > minimum if exclusive_minimum else value >= minimum)
  high_ok = maximum is None or (value < maximum if exclusive_maximum else value <= maximum)
  if not low_ok or not high_ok:
    low = "" if minimum is None else (f"> {minimum}" if exclusive_minimum else f">= {minimum}")
    high = "" if maximum is None else (f"< {maximum}" if exclusive_maximum else f"<= {maximum}")
    allowed = " and ".join(part for part in (low, high) if part)
    raise ConfigError(f"{name} must be {allowed}; got {value!r}.")
  return value


def warn_if_no_effect(name, value, default, needed):
  """Logs a warning if `name` was set to `value`, not its `default`, while it has no
  effect: `needed` names what gives it one, e.g. "ssgan.penalty".

  A warning, not an error: a config file may set both and a command line switch the
  feature off, which should work without dropping the file's other bindings.
  """
  if value != default:
    logging.warning("%s = %r has no effect without %s; it is ignored.", name, value, needed)


def first_line(error, limit=None):
  """`"<type>: <first line of its message>"`, for a one-line message that names an error;
  with `limit`, the line is cut after a word at `limit` characters."""
  text = str(error).strip().splitlines()
  line = text[0] if text else ""
  if limit is not None and len(line) > limit:
    line = line[:limit].rsplit(" ", 1)[0] + " ..."
  return f"{type(error).__name__}: {line}"


@contextlib.contextmanager
def user_errors_as_one_line():
  """For command-line programs: a UserError becomes `error: <first line>` on stderr and
  its `exit_code` (1, or e.g. EXIT_CODE_PREEMPTED); any other exception
  passes through with its traceback.

  Only the first line: gin appends "In call to configurable ..." lines (`-v 1` shows them
  and the traceback).
  """
  try:
    yield
  except UserError as e:
    logging.vlog(1, "traceback:", exc_info=True)
    print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
    sys.exit(e.exit_code)
