"""A live progress line on a terminal, for training (a Keras callback) and other loops.

On a terminal (the stream's `isatty()`), one line is redrawn in place (`\\r`) at most
every `min_interval` seconds (0.25 s: 4 times a second):

    step 1200/10000  8.31/s  ETA 17m39s  loss/d=1.234  loss/g=0.568  rot_real=0.98  rot_fake=0.97

(steps per second, then the main losses and D's rotation accuracy on real and fake
images). A field that does not fit the terminal's width whole is left out, from the end:
on 80 columns the line above ends at rot_real.

Off a terminal (CI, cluster logs, a redirected stderr) it writes nothing: the periodic
log lines of `callbacks.ProgressAndSummaries` are the record there.

Reading a step counter or a metric as a Python number waits for the device. So nothing
is read between redraws: a call that comes before `min_interval` has passed returns
after reading the clock. (Keras 3.15's CallbackList converts every batch's logs to floats
itself whenever a callback overrides `on_train_batch_end`, as `StopAtStep` does; the
throttling keeps this callback from adding to that.)

Log records (Python `logging`, which absl uses) that come while the line is shown would
be appended to it; so, while a line is shown, a filter on the root logger's handlers
clears it before each record, and the next redraw draws it again below.
"""

import logging
import math
import os
import sys
import time

import keras

# (name in the logs, label on the line, format); those absent from the logs are left out.
METRICS = (("loss/d", "loss/d", ".3f"), ("loss/g", "loss/g", ".3f"),
           ("accuracy/d_rotation_real", "rot_real", ".2f"),
           ("accuracy/d_rotation_fake", "rot_fake", ".2f"))
_SEPARATOR = "  "


def format_duration(seconds):
  """'1h02m03s' (hours unbounded), '7m09s' under an hour, or '?'."""
  if seconds is None or not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def _fit(parts, width):
  """`parts` joined by two spaces, leaving out from the end those that do not fit whole in
  `width` characters (the first is cut if it alone is too long)."""
  text = parts[0][:width]
  for part in parts[1:]:
    if len(text) + len(_SEPARATOR) + len(part) > width:
      break
    text += _SEPARATOR + part
  return text


def _is_terminal(stream):
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError):  # No isatty, or a closed stream.
    return False


class _ClearBeforeLogs(logging.Filter):
  """Clears the progress line before a log record is written (never drops a record)."""

  def __init__(self, line):
    super().__init__()
    self.line = line

  def filter(self, record):
    self.line.clear()
    return True


class _Line:
  """One status line redrawn in place on a terminal stream, throttled in time."""

  def __init__(self, stream, min_interval, clock):
    self.stream = stream if stream is not None else sys.stderr
    self.enabled = _is_terminal(self.stream)
    self.min_interval, self.clock = min_interval, clock
    self.last_draw = None  # Clock time of the last redraw.
    self.shown = 0  # Characters of the line now on screen.
    self._filter = None
    self._handlers = []

  def due(self):
    """Whether a redraw is due now (always False off a terminal)."""
    if not self.enabled:
      return False
    return self.last_draw is None or self.clock() - self.last_draw >= self.min_interval

  def draw(self, parts):
    """Draws the fields `parts` (strings), as many as fit whole."""
    self.last_draw = self.clock()
    text = _fit(parts, self._width() - 1)  # A wrapped line could not be redrawn in place.
    self.stream.write("\r" + text + " " * max(0, self.shown - len(text)))
    self.stream.flush()
    self.shown = len(text)
    self._watch_logs()

  def clear(self):
    if self.shown:
      self.stream.write("\r" + " " * self.shown + "\r")
      self.stream.flush()
      self.shown = 0

  def finish(self, parts=None):
    """Draws the fields `parts` (if any) for good and ends the line."""
    if self.enabled and (parts is not None or self.shown):
      if parts is not None:
        self.draw(parts)
      self.stream.write("\n")
      self.stream.flush()
      self.shown = 0
    self._unwatch_logs()

  def _width(self):
    try:
      columns = os.get_terminal_size(self.stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both.
      columns = 0
    return columns or 120  # 0: a terminal that has not been given a size.

  def _watch_logs(self):
    if self._filter is None:
      self._filter = _ClearBeforeLogs(self)
      self._handlers = list(logging.getLogger().handlers)
      for handler in self._handlers:
        handler.addFilter(self._filter)

  def _unwatch_logs(self):
    for handler in self._handlers:
      handler.removeFilter(self._filter)
    self._filter, self._handlers = None, []


class _Rate:
  """Items per second, smoothed exponentially over about `time_constant` seconds."""

  def __init__(self, time_constant):
    self.time_constant = time_constant
    self.value = None
    self._last = None  # (time, count)

  def update(self, now, count):
    if self._last is not None and now > self._last[0] and count >= self._last[1]:
      elapsed = now - self._last[0]
      rate = (count - self._last[1]) / elapsed
      weight = 1.0 - math.exp(-elapsed / self.time_constant)
      self.value = rate if self.value is None else self.value + weight * (rate - self.value)
    self._last = (now, count)
    return self.value

  def eta(self, remaining):
    return remaining / self.value if self.value else None


class LiveProgress(keras.callbacks.Callback):
  """The training progress line: step/total, steps/s (smoothed), ETA and main losses.

  Args:
    total_steps: the step training ends at (generator steps).
    stream: where to draw (default: sys.stderr at the start of training); nothing is
      written unless it is a terminal.
    step_fn: `step_fn(model) -> int` (default: `model.step`, generator steps).
    min_interval: seconds between redraws, at least.
    metrics: `(log name, label, format)` to show, when present in the batch logs.
    time_constant: seconds over which steps/s is smoothed.
    clock: monotonic seconds (a test may pass a fake).
  """

  def __init__(self, total_steps, stream=None, step_fn=None, min_interval=0.25,
               metrics=METRICS, time_constant=10.0, clock=time.monotonic):
    super().__init__()
    self.total_steps, self.stream = total_steps, stream
    self.step_fn = step_fn or (lambda model: model.step)
    self.min_interval, self.metrics, self.clock = min_interval, metrics, clock
    self.time_constant = time_constant
    self._line = None

  def on_train_begin(self, logs=None):
    self._line = _Line(self.stream, self.min_interval, self.clock)
    self._rate = _Rate(self.time_constant)
    self._metrics = []  # The last shown, kept for the final line.

  def on_train_batch_end(self, batch, logs=None):
    if self._line is not None and self._line.due():
      self._line.draw(self._parts(logs))

  def on_train_end(self, logs=None):
    if self._line is not None:
      self._line.finish(self._parts(None) if self._line.enabled and self._line.shown else None)
      self._line = None

  def _parts(self, logs):
    step = self.step_fn(self.model)
    rate = self._rate.update(self.clock(), step)
    parts = [f"step {step}/{self.total_steps}",
             f"{rate:.2f}/s" if rate is not None else "?/s",
             f"ETA {format_duration(self._rate.eta(max(0, self.total_steps - step)))}"]
    if logs:
      self._metrics = [f"{label}={float(logs[name]):{form}}"
                       for name, label, form in self.metrics if name in logs]
    return parts + self._metrics


def progress_bar(iterable, total=None, description="", unit="it", stream=None,
                 min_interval=0.25, clock=time.monotonic):
  """Yields the items of `iterable`, drawing 'description 12/100  3.40 it/s  ETA ...'.

  Terminal only, redrawn at most every `min_interval` seconds; off a terminal it only
  yields. For evaluation and export loops.

  Args:
    iterable: the items.
    total: how many there are (default: `len(iterable)` if it has one).
    description: the line's first word(s).
    unit: what an item is called in the rate ("it", "images", ...).
    stream, min_interval, clock: as for `LiveProgress`.
  """
  if total is None and hasattr(iterable, "__len__"):
    total = len(iterable)
  line = _Line(stream, min_interval, clock)
  if not line.enabled:
    yield from iterable
    return
  rate = _Rate(time_constant=10.0)
  done = 0

  def fields():
    speed = rate.update(clock(), done)
    parts = [f"{description} {done}/{total}" if total is not None else f"{description} {done}",
             f"{speed:.2f} {unit}/s" if speed is not None else f"? {unit}/s"]
    if total is not None:
      parts.append(f"ETA {format_duration(rate.eta(max(0, total - done)))}")
    return [p.strip() for p in parts]

  try:
    for item in iterable:
      if line.due():
        line.draw(fields())
      # Counted when handed out: a consumer that stops once it has what it needs
      # (stream_activations) never asks for the next, and the last line says all.
      done += 1
      yield item
  finally:
    line.finish(fields())
