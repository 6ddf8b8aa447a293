"""Many generator steps per call (train.steps_per_execution): the same training, exactly.

K steps per call must give the weights, the checkpoints and the logged interval means of
one step per call; a run stopped inside a log interval resumes exactly; a non-finite
loss inside a call stops training, reports its step and keeps the checkpoint before it.
"""

import shutil

import gin
import keras
import pytest
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import multi_step
from ssgan_tf import train_lib

import strategies
from test_train_lib import _assert_same_state
from test_train_lib import _checkpoint_steps
from test_train_lib import _first_line
from test_train_lib import _scalars
from test_train_lib import _state
from tiny_runs import QUICKSTART
from tiny_runs import tiny_bindings

# Every interval 4 steps: one step per call, or up to 4.
SCHEDULE = tiny_bindings(log_every=4) + ["train.checkpoint_every = 4",
                                         "train.sample_every = 4"]


def _train(workdir, total_steps, *bindings, strategy=None):
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [QUICKSTART], SCHEDULE + [f"train.total_steps = {total_steps}", *bindings])
  try:
    model = train_lib.train(str(workdir), strategy or tf.distribute.get_strategy())
    return model, _state(model)
  finally:
    gin.clear_config()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """8 steps one per call; the same chosen automatically (4 per call); and 2 steps at 2
  per call, then resumed to 8 (from step 2, inside the first log interval)."""
  dirs = {name: tmp_path_factory.mktemp(name) for name in ("one", "auto", "stopped")}
  one_model, one = _train(dirs["one"], 8, "train.steps_per_execution = 1")
  auto_model, auto = _train(dirs["auto"], 8)
  _, _ = _train(dirs["stopped"], 2, "train.steps_per_execution = 2")
  at_2 = tmp_path_factory.mktemp("at_2") / "w"
  shutil.copytree(dirs["stopped"], at_2)
  resumed_model, resumed = _train(dirs["stopped"], 8)
  return {"dirs": dirs, "one": one, "auto": auto, "resumed": resumed, "at_2": at_2,
          "per_call": {"one": one_model.steps_per_execution,
                       "auto": auto_model.steps_per_execution,
                       "resumed": resumed_model.steps_per_execution}}


def test_auto_runs_an_interval_per_call_and_a_resumed_run_what_fits(runs):
  assert runs["per_call"] == {"one": 1, "auto": 4, "resumed": 2}


def test_several_steps_per_call_give_bit_identical_weights(runs):
  _assert_same_state(runs["auto"], runs["one"])


def test_several_steps_per_call_log_the_same_interval_means_and_checkpoints(runs):
  one, auto = _scalars(runs["dirs"]["one"]), _scalars(runs["dirs"]["auto"])
  losses = {key: value for key, value in one.items() if key[1].startswith(("loss/", "acc"))}
  assert {step for step, _ in losses} == {4, 8}
  assert losses == {key: auto[key] for key in losses}
  assert not any(tag.startswith("nonfinite") for _, tag in auto)
  assert _checkpoint_steps(runs["dirs"]["auto"]) == _checkpoint_steps(runs["dirs"]["one"]) \
      == [4, 8]


def test_a_run_stopped_inside_an_interval_resumes_exactly(runs):
  _assert_same_state(runs["resumed"], runs["one"])


def test_two_replicas_with_several_steps_per_call_train_as_with_one(tmp_path):
  # Keras' own loop for several steps fails under MirroredStrategy (multi_step.py).
  strategy = strategies.own_mirrored_strategy()
  _, one = _train(tmp_path / "one", 4, "train.steps_per_execution = 1", strategy=strategy)
  model, auto = _train(tmp_path / "auto", 4, strategy=strategy)
  assert model.steps_per_execution == 4
  _assert_same_state(auto, one)


def test_a_nan_inside_a_call_stops_there_and_keeps_the_checkpoint_before(runs, tmp_path):
  # From step 2, two steps per call: the huge learning rates make step 3's losses NaN,
  # the first step of the call that ends at step 4, the only step the callbacks see.
  workdir = tmp_path / "w"
  shutil.copytree(runs["at_2"], workdir)
  with pytest.raises(errors.TrainingDiverged) as error:
    _train(workdir, 8, "optimizers.g_lr = 1e30", "train.checkpoint_every = 2",
           "train.steps_per_execution = 2")
  assert _first_line(error).startswith("non-finite loss or weights at step 3;")
  assert "ckpt-2" in _first_line(error)
  assert _checkpoint_steps(workdir) == [2]


class _TraceCountingRegression(multi_step.MultiStepTraining):
  """A linear regression whose `train_step` counts how often it is traced."""

  def __init__(self):
    super().__init__(name="regression")
    self.dense = keras.layers.Dense(1)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.traces = 0

  def call(self, x):
    return self.dense(x)

  @property
  def metrics(self):
    return [self.loss_tracker]

  def train_step(self, data):
    self.traces += 1
    x, y = data
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(self(x) - y))
    self.optimizer.apply_gradients(
        zip(tape.gradient(loss, self.trainable_variables), self.trainable_variables))
    self.loss_tracker.update_state(loss)
    return self.get_metrics_result()


def test_several_steps_per_call_trace_the_step_once_and_log_after_the_last():
  # Tracing (and optimizing) the step twice, once in the loop and once for the last
  # step's logs, nearly doubled the first call (the quickstart's, 10 steps: 10.3-12.7
  # vs 6.3-7.7 s on a 2-core AMD EPYC).
  model = _TraceCountingRegression()
  model.compile(optimizer=keras.optimizers.SGD(0.1), steps_per_execution=4)
  x = tf.reshape(tf.range(8, dtype=tf.float32), [4, 2])
  # Variables first, as SSGAN builds its nets and (in compile) its optimizers: a function
  # that creates variables is traced once more, by tf.function itself.
  model(x)
  model.optimizer.build(model.trainable_variables)
  data = tf.data.Dataset.from_tensors((x, x[:, :1])).repeat()
  history = model.fit(data, steps_per_epoch=8, epochs=1, verbose=0)
  assert model.traces == 1
  assert model.optimizer.iterations.numpy() == 8
  assert history.history["loss"] == [float(model.loss_tracker.result())]


# --- Choosing the steps per call ------------------------------------------------------

INTERVALS = {"train.total_steps": 2000, "train.log_every": 100,
             "train.checkpoint_every": 500, "train.sample_every": 250, "train.eval_every": 0}


@pytest.mark.parametrize("requested, start, device, expected", [
    (None, 0, "CPU", 10),     # gcd 50, up to 10 on a CPU.
    (None, 0, "GPU", 50),     # gcd 50, up to 100 on an accelerator.
    (None, 1230, "GPU", 10),  # resumed from a step that only 10 divides.
    (25, 0, "CPU", 25),       # asked for: any divisor of every interval.
    (25, 1230, "CPU", 10),    # asked for; resumed from a step of another setting.
    (1, 0, "TPU", 1),
])
def test_steps_per_call_divide_every_interval(requested, start, device, expected):
  assert train_lib.steps_per_call(requested, INTERVALS, start, device) == expected


def test_steps_per_call_that_do_not_divide_an_interval_are_refused():
  with pytest.raises(errors.ConfigError, match=r"train.steps_per_execution = 20 does not "
                     r"divide train.sample_every = 250; choose a divisor"):
    train_lib.steps_per_call(20, INTERVALS, 0, "CPU")
