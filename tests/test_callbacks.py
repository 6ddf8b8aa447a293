"""OperativeConfig on resume: a changed configuration is recorded beside the previous one
and named binding by binding in a warning; an unchanged one leaves the workdir alone."""

import logging
import types

import gin
import pytest

from ssgan_tf import callbacks

PREVIOUS = """# Parameters for dataset:
# ==============================================================================
dataset.image_dir = '/a'

# Parameters for networks:
# ==============================================================================
networks.generator_kwargs = \\
    {'base_channels': 24,
     'normalization': 'self_modulated'}

# Parameters for ssgan:
# ==============================================================================
ssgan.gan_loss = @hinge
ssgan.seed = 0

# Parameters for train:
# ==============================================================================
train.seed = 0
"""


def test_changed_bindings_are_listed_with_what_a_changed_seed_means():
  after = (PREVIOUS.replace("'/a'", "'/b'").replace("train.seed = 0", "train.seed = 7")
           .replace("ssgan.seed = 0", "ssgan.seed = 3").replace("24,", "32,")
           .replace("@hinge", "@eval/hinge") + "scope/train.log_every = %STEPS\n")
  assert callbacks.describe_changes(PREVIOUS, after) == (
      "dataset.image_dir '/a' -> '/b'; networks.generator_kwargs {'base_channels': 24, "
      "'normalization': 'self_modulated'} -> {'base_channels': 32, 'normalization': "
      "'self_modulated'}; scope/train.log_every (unset) -> %STEPS; ssgan.gan_loss @hinge -> "
      "@eval/hinge; ssgan.seed 0 -> 3; train.seed 0 -> 7; ssgan.seed has no effect on "
      "resume: the noise generator's state comes from the checkpoint; train.seed: the data "
      "order (and the sample grids' z) follow the new seed from this step on")


def test_a_changed_batch_says_the_resume_is_not_exact():
  # The data stream goes on at step x the new batch: images repeat or are skipped.
  after = PREVIOUS + "ssgan.global_batch_size = 16\n"
  described = callbacks.describe_changes(PREVIOUS + "ssgan.global_batch_size = 32\n", after)
  assert described.startswith("ssgan.global_batch_size 32 -> 16; ssgan.global_batch_size: "
                              "the data stream goes on at this step's position")
  assert described.endswith("not an exact resume")


def test_a_reformatted_config_has_no_changes_and_an_unparsable_one_says_so():
  assert callbacks.describe_changes(PREVIOUS, PREVIOUS.replace(" = \\\n    {", " = {")) == ""
  assert callbacks.describe_changes(PREVIOUS, "train.seed = (").startswith(
      "the operative configs cannot be compared")


@gin.configurable("callbacks_test")
def _configurable(seed=0):
  return seed


@pytest.fixture
def gin_config():
  gin.clear_config()
  yield
  gin.clear_config()


def _run_first_step(workdir, start_step):
  callback = callbacks.OperativeConfig(str(workdir))
  callback.set_model(types.SimpleNamespace(step=start_step))
  callback.on_train_begin()
  callback.on_train_batch_end(0)


def test_resuming_with_changed_settings_warns_once_against_the_previous_run(
    gin_config, tmp_path, caplog):
  _configurable()
  _run_first_step(tmp_path, 0)  # A new run: its config, no warning.
  gin.bind_parameter("callbacks_test.seed", 7)
  _configurable()
  with caplog.at_level(logging.WARNING, logger="absl"):
    _run_first_step(tmp_path, 10)
    _run_first_step(tmp_path, 20)  # The same settings as the run resumed at step 10.
  assert [r.getMessage() for r in caplog.records] == [
      f"resumed with changed settings: callbacks_test.seed 0 -> 7 (recorded in "
      f"{tmp_path / 'operative_config-10.gin'})."]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["operative_config-10.gin",
                                                        "operative_config.gin"]
