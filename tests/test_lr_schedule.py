"""Learning-rate decay: its shape, its length for D and G, and checkpoints under it."""

import shutil

import gin
import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import lr_schedule
from ssgan_tf import ssgan
from ssgan_tf import train_lib
from ssgan_tf import workdir as workdir_lib

from test_train_lib import _assert_same_state
from test_train_lib import _state
from tiny_runs import files
from tiny_runs import QUICKSTART
from tiny_runs import tiny_bindings


def test_linear_decay_holds_then_falls_to_zero_and_stays():
  schedule = lr_schedule.learning_rate(1e-3, "linear", 0.5, 100)
  rates = [float(schedule(step)) for step in (0, 50, 75, 100, 150)]
  np.testing.assert_allclose(rates, [1e-3, 1e-3, 5e-4, 0, 0], atol=1e-12)


def test_a_decay_start_that_rounds_to_the_end_still_ends_at_zero():
  # 0.99 of 10 updates rounds to 10: the decay starts at the last update instead.
  schedule = lr_schedule.learning_rate(1e-3, "linear", 0.99, 10)
  rates = [float(schedule(step)) for step in (0, 9, 10, 20)]
  np.testing.assert_allclose(rates, [1e-3, 1e-3, 0, 0], atol=1e-12)


def test_constant_is_the_plain_float_rate():
  assert lr_schedule.learning_rate(2e-4, "constant", 0.5, 100) == 2e-4


@pytest.mark.parametrize("decay, start, match", [
    ("cosine", 0.5, "unknown optimizers.lr_decay 'cosine'; choose one of"),
    ("linear", 1.0, r"optimizers.decay_start must be >= 0 and < 1; got 1.0."),
    ("linear", -0.1, r"optimizers.decay_start must be >= 0 and < 1; got -0.1."),
])
def test_bad_settings_are_one_line_config_errors(decay, start, match):
  with pytest.raises(errors.ConfigError, match=match):
    lr_schedule.learning_rate(1e-3, decay, start, 100)


def test_d_decays_over_its_own_updates_disc_iters_per_generator_step():
  gin.clear_config()
  gin.parse_config(['optimizers.lr_decay = "linear"', "optimizers.decay_start = 0.0"])
  try:
    d_opt, g_opt = ssgan.build_optimizers(total_steps=10, disc_iters=2)
  finally:
    gin.clear_config()
  # Halfway through the run: 5 generator steps, 10 D updates.
  g_opt.iterations.assign(5)
  d_opt.iterations.assign(10)
  assert float(g_opt.learning_rate) == pytest.approx(1e-4)
  assert float(d_opt.learning_rate) == pytest.approx(1e-4)


DECAY = ['optimizers.lr_decay = "linear"', "optimizers.decay_start = 0.25"]


def _train(workdir, total_steps, *bindings, decay=tuple(DECAY)):
  gin.clear_config()
  gin.parse_config_files_and_bindings(
      [QUICKSTART], tiny_bindings(log_every=2) + [*decay, f"train.total_steps = {total_steps}",
                                                  *bindings])
  try:
    return _state(train_lib.train(str(workdir), tf.distribute.get_strategy()))
  finally:
    gin.clear_config()


def _back_to_step_2(workdir):
  """The workdir as a run of the same config stopped (preempted) at step 2 left it."""
  folder = workdir / "checkpoints"
  for path in folder.glob("ckpt-4.*"):
    path.unlink()
  (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n'
                                     'all_model_checkpoint_paths: "ckpt-2"\n')


def test_a_decayed_run_resumes_exactly_and_restores_for_inference(tmp_path):
  whole = _train(tmp_path / "whole", 4)
  shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
  _back_to_step_2(tmp_path / "resumed")
  _assert_same_state(_train(tmp_path / "resumed", 4), whole)
  gin.clear_config()
  restored = workdir_lib.restore_for_inference(str(tmp_path / "whole"))
  assert restored.step == 4
  _assert_same_state(_state(restored.model)[:-1], whole[:-1])


def test_a_run_cannot_switch_between_a_constant_rate_and_a_decay(tmp_path):
  _train(tmp_path / "w", 2, decay=())
  before = files(tmp_path / "w")
  with pytest.raises(errors.ConfigError) as error:
    _train(tmp_path / "w", 4)
  assert str(error.value).splitlines()[0].endswith(
      "was trained with a constant learning rate and the config asks for a decaying one "
      "(optimizers.lr_decay); a run keeps its kind of rate: set it back, or start a new "
      "--workdir.")
  assert files(tmp_path / "w") == before
