"""The live progress line: on a terminal, redrawn in place with step, rate, ETA and losses,
at most every min_interval (logs untouched in between); off a terminal, nothing."""

import errno
import io
import logging
import os
import sys

import tensorflow as tf

from ssgan_tf import progress

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import preemption_child  # noqa: E402  pylint: disable=g-import-not-at-top


class FakeTerminal(io.StringIO):

  def isatty(self):
    return True


class Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class UntouchableLogs(dict):
  """Batch logs that fail the test if read."""

  def __getitem__(self, key):
    raise AssertionError("logs read while no redraw was due")

  def __contains__(self, key):
    raise AssertionError("logs read while no redraw was due")

  def __bool__(self):
    raise AssertionError("logs read while no redraw was due")


class Counter:
  """A step counter standing in for the model; counts how often it was read."""

  def __init__(self):
    self.step, self.reads = 0, 0

  def __call__(self, model):
    self.reads += 1
    return self.step


def _started(stream, clock, counter):
  callback = progress.LiveProgress(100, stream=stream, step_fn=counter, clock=clock)
  callback.on_train_begin()
  return callback


def test_line_is_redrawn_in_place_with_step_rate_eta_and_losses():
  stream, clock, counter = FakeTerminal(), Clock(), Counter()
  callback = _started(stream, clock, counter)
  counter.step = 10
  callback.on_train_batch_end(0, {"loss/d": 1.5, "loss/g": 0.25, "other": 3.0})
  first = stream.getvalue()
  assert first.startswith("\rstep 10/100  ?/s  ETA ?  loss/d=1.500  loss/g=0.250")
  assert "other" not in first
  clock.now += 2.0
  counter.step = 30
  callback.on_train_batch_end(0, {"loss/d": 1.0, "loss/g": 0.5,
                                  "accuracy/d_rotation_real": 0.75})
  second = stream.getvalue()[len(first):]
  # 20 steps in 2 s; 70 steps to go.
  assert second.startswith("\rstep 30/100  10.00/s  ETA 0m07s  loss/d=1.000  "
                           "loss/g=0.500  rot_real=0.75")
  assert "\n" not in stream.getvalue()
  callback.on_train_end()
  assert stream.getvalue().endswith("\n") and stream.getvalue().count("\n") == 1


def test_fields_that_do_not_fit_the_width_whole_are_left_out_from_the_end():
  parts = ["step 1200/10000", "8.31/s", "ETA 17m39s", "loss/d=1.234", "loss/g=0.568",
           "rot_real=0.98", "rot_fake=0.97"]
  assert progress._fit(parts, 79) == ("step 1200/10000  8.31/s  ETA 17m39s  loss/d=1.234  "
                                      "loss/g=0.568  rot_real=0.98")  # 80 columns.
  assert progress._fit(parts, 200) == "  ".join(parts)
  assert progress._fit(parts, 24) == "step 1200/10000  8.31/s"
  assert progress._fit(parts, 10) == "step 1200/"


def test_eta_under_an_hour_and_over_it():
  assert [progress.format_duration(s) for s in (7, 1059.4, 3600, 90061, None, float("inf"))] == [
      "0m07s", "17m39s", "1h00m00s", "25h01m01s", "?", "?"]


def test_no_redraw_and_no_reads_before_min_interval():
  stream, clock, counter = FakeTerminal(), Clock(), Counter()
  callback = _started(stream, clock, counter)
  callback.on_train_batch_end(0, {"loss/d": 1.0})
  written, reads = stream.getvalue(), counter.reads
  for _ in range(100):
    clock.now += 0.002  # 0.2 s in all: under the 0.25 s interval.
    callback.on_train_batch_end(0, UntouchableLogs())
  assert stream.getvalue() == written and counter.reads == reads
  clock.now += 0.1  # 0.3 s since the last redraw.
  callback.on_train_batch_end(0, {"loss/d": 2.0})
  assert stream.getvalue() != written


def test_off_a_terminal_nothing_is_written():
  stream, clock, counter = io.StringIO(), Clock(), Counter()
  callback = _started(stream, clock, counter)
  for step in range(1, 6):
    clock.now += 1.0
    counter.step = step
    callback.on_train_batch_end(0, UntouchableLogs())
  callback.on_train_end()
  assert stream.getvalue() == "" and counter.reads == 0


def test_a_log_record_clears_the_line_first():
  stream, clock, counter = FakeTerminal(), Clock(), Counter()
  log = io.StringIO()
  handler = logging.StreamHandler(log)
  logging.getLogger().addHandler(handler)
  try:
    callback = _started(stream, clock, counter)
    callback.on_train_batch_end(0, {})
    shown = len(stream.getvalue()) - 1
    logging.getLogger("test_progress").warning("saved a checkpoint")
    assert stream.getvalue().endswith("\r" + " " * shown + "\r")
    assert log.getvalue() == "saved a checkpoint\n"
    callback.on_train_end()
    assert handler.filters == []
  finally:
    logging.getLogger().removeHandler(handler)


def test_progress_bar_on_a_terminal_and_off_it():
  stream, clock = FakeTerminal(), Clock()
  items = []
  for item in progress.progress_bar(range(3), description="eval", unit="images",
                                    stream=stream, clock=clock):
    items.append(item)
    clock.now += 1.0
  assert items == [0, 1, 2]
  out = stream.getvalue()
  assert out.startswith("\reval 0/3  ? images/s  ETA ?")
  assert "\reval 3/3  1.00 images/s  ETA 0m00s" in out and out.endswith("\n")
  # A consumer that stops at the last item without asking for more: 3/3, not 2/3.
  stream = FakeTerminal()
  bar = progress.progress_bar(range(3), description="eval", stream=stream, clock=clock)
  assert [next(bar) for _ in range(3)] == [0, 1, 2]
  bar.close()
  assert stream.getvalue().rstrip("\n").rsplit("\r", 1)[-1].startswith("eval 3/3 ")
  plain = io.StringIO()
  assert list(progress.progress_bar(iter(range(3)), stream=plain)) == [0, 1, 2]
  assert plain.getvalue() == ""


def read_until_closed(controller):
  """All that the other side of a pseudo-terminal wrote before it closed.

  One os.read returns only what the line discipline has passed on so far, which can be a part.
  """
  chunks = []
  while True:
    try:
      chunk = os.read(controller, 65536)
    except OSError as error:  # Linux: EIO once the closed side's output is drained.
      if error.errno != errno.EIO:
        raise
      break
    if not chunk:
      break
    chunks.append(chunk)
  return b"".join(chunks).decode()


def test_during_fit_on_a_pseudo_terminal():
  controller, terminal = os.openpty()
  with os.fdopen(terminal, "w") as stream:
    model, _ = preemption_child.build(tf.distribute.get_strategy())
    callback = progress.LiveProgress(5, stream=stream, min_interval=0.0)
    model.fit(preemption_child.dataset(), steps_per_epoch=5, epochs=1, callbacks=[callback],
              verbose=0, shuffle=False)
  out = read_until_closed(controller)
  os.close(controller)
  # A terminal turns "\n" into "\r\n".
  assert out.count("\rstep ") >= 5 and "step 5/5" in out and "ETA" in out
  assert "loss" not in out.split("ETA")[1]  # This model logs "loss", not "loss/d".
  assert out.endswith("\r\n")
