"""Tests of ema.py and its uses: the EMA of G's weights follows compare_gan's recursion
from its start step, keeps its own batch-norm statistics, is what `generate` samples,
survives a checkpoint bit for bit, and names its metrics apart. (Two replicas keep the
same average as one device: tests/test_ssgan.py, which holds the session's one
MirroredStrategy; a second one over the same devices reuses its collective keys.)

Tiny SNDCGAN (16x16x3, base 4 channels, z 16, global batch 8), SGD so every step moves
the weights visibly; the reference recursion is written here in NumPy.
"""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from ssgan_tf import checkpoints
from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import export_lib
from ssgan_tf import losses
from ssgan_tf import rotation
from ssgan_tf import ssgan
from ssgan_tf import train_lib
from ssgan_tf import workdir as workdir_lib
from ssgan_tf.evaluation import classifiers
from ssgan_tf.evaluation import eval_lib
from ssgan_tf.nets import build_networks

from tiny_runs import QUICKSTART
from tiny_runs import tiny_bindings

IMAGE_SHAPE = (16, 16, 3)
Z_DIM = 16
BATCH = 8
TINY = {"base_channels": 4}


def _make_generator(num_replicas=1):
  return build_networks(IMAGE_SHAPE, synchronized_bn=num_replicas > 1, architecture="sndcgan",
                        z_dim=Z_DIM, generator_kwargs=TINY, discriminator_kwargs=TINY)[0]


def _model(decay=0.5, start=2, num_replicas=1, seed=0, learning_rate=0.1,
           statistics_every=1):
  """Tiny SSGAN keeping an EMA (decay None: none); call inside the strategy's scope."""
  keras.utils.set_random_seed(seed)
  generator, discriminator = build_networks(
      IMAGE_SHAPE, synchronized_bn=num_replicas > 1, architecture="sndcgan", z_dim=Z_DIM,
      generator_kwargs=TINY, discriminator_kwargs=TINY)
  model = ssgan.SSGAN(generator, discriminator,
                      batch=rotation.BatchSizes(BATCH, num_replicas, BATCH), z_dim=Z_DIM,
                      gan_loss=losses.NON_SATURATING, ema_decay=decay, ema_start_step=start,
                      ema_statistics_every=statistics_every,
                      make_generator=lambda: _make_generator(num_replicas))
  model.compile(keras.optimizers.SGD(learning_rate), keras.optimizers.SGD(learning_rate))
  return model


def _step_data(step, global_batch=BATCH):
  rng = np.random.default_rng(100 + step)
  return {"images": tf.constant(rng.uniform(-1, 1, (global_batch,) + IMAGE_SHAPE)
                                .astype(np.float32)),
          "z": tf.constant(rng.normal(size=(2 * global_batch, Z_DIM)).astype(np.float32))}


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _trainable(network):
  return [v for v in network.variables if v.trainable]


def _statistics(network):
  return [v for v in network.variables if not v.trainable]


# --- The recursion ---------------------------------------------------------------------

@pytest.mark.parametrize("decay, start", [(0.5, 2), (0.9, 0)])
def test_ema_weights_follow_compare_gans_recursion(decay, start):
  model = _model(decay, start)
  g, average = model.generator, model.ema_generator
  # EMA_0 = G_0; EMA_k = G_k for k <= start, then decay * EMA_(k-1) + (1 - decay) * G_k.
  expected = [w.astype(np.float64) for w in _values(_trainable(g))]
  for step in range(1, 6):
    model.train_step(_step_data(step))
    assert int(model.g_optimizer.iterations) == step
    weights = _values(_trainable(g))
    d = decay if step > start else 0.0
    expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
    for got, want, w in zip(_values(_trainable(average)), expected, weights):
      if step <= start:
        np.testing.assert_array_equal(got, w)  # Before the start: G exactly.
      else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # The averaging did something: the average is not G's last weights.
  assert max(np.max(np.abs(a - w)) for a, w in zip(_values(_trainable(average)), weights)) > 1e-3


def test_the_average_is_tfs_exponential_moving_average_bit_for_bit():
  # compare_gan's EMA is tf.train.ExponentialMovingAverage: average -= (1 - decay) *
  # (average - w). `decay * average + (1 - decay) * w`, the same recursion, rounds
  # otherwise, and at decay 0.9999 the average keeps each rounding for ~1e4 steps.
  model = _model(decay=0.999, start=0)
  g, average = model.generator, model.ema_generator
  weights = _trainable(g)
  copies = [tf.Variable(w) for w in weights]  # The average starts at G's weights.
  reference = tf.train.ExponentialMovingAverage(0.999)
  reference.apply(copies)
  rng = np.random.default_rng(0)
  for step in range(1, 4):
    for w, c in zip(weights, copies):  # G moves as under Adam: ~lr per weight and step.
      w.assign_add(rng.choice([-2e-4, 2e-4], w.shape).astype(np.float32))
      c.assign(w)
    model.ema.update(g, step=tf.constant(step, tf.int64), z=_step_data(step)["z"][:BATCH])
    reference.apply(copies)
  for a, c in zip(_trainable(average), copies):
    np.testing.assert_array_equal(a.numpy(), reference.average(c).numpy())
  assert max(np.max(np.abs(a.numpy() - w.numpy())) for a, w in zip(_trainable(average),
                                                                    weights)) > 0


def _assert_statistics_are_one_pass_on(average, previous, z):
  """`average`'s BN statistics are what one training-mode pass of its current weights on
  `z` makes of `previous` (its variables' values before the step)."""
  check = _make_generator()
  for c, a, p in zip(check.variables, average.variables, previous):
    c.assign(a.numpy() if a.trainable else p)
  check(z, training=True)
  for c, a in zip(_statistics(check), _statistics(average)):
    np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_ema_batch_norm_statistics_are_its_own_after_the_start():
  model = _model(decay=0.5, start=1)
  g, average = model.generator, model.ema_generator
  data = _step_data(1)
  model.train_step(data)  # Step 1 <= start: every variable, statistics included, is G's.
  for a, b in zip(average.variables, g.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

  # Step 2: the statistics are those of the averaged weights run once in training mode
  # on the G step's noise (rows B.. of z), starting from the average's previous ones.
  previous = _values(average.variables)
  data = _step_data(2)
  model.train_step(data)
  _assert_statistics_are_one_pass_on(average, previous, data["z"][BATCH:])
  for a, b in zip(_statistics(average), _statistics(g)):
    assert not np.allclose(a.numpy(), b.numpy())  # Not G's statistics.


def test_statistics_passes_run_only_after_steps_that_are_multiples_of_statistics_every():
  model = _model(decay=0.5, start=0, statistics_every=2)
  average = model.ema_generator
  initial = _values(_statistics(average))
  weights_before = _values(_trainable(average))
  model.train_step(_step_data(1))  # Step 1: the weights average, the statistics stay.
  for a, b in zip(_statistics(average), initial):
    np.testing.assert_array_equal(a.numpy(), b, err_msg=a.path)
  assert any(not np.array_equal(a.numpy(), b)
             for a, b in zip(_trainable(average), weights_before))
  # Step 2: one pass of the averaged weights in training mode on the G step's noise.
  previous = _values(average.variables)
  data = _step_data(2)
  model.train_step(data)
  _assert_statistics_are_one_pass_on(average, previous, data["z"][BATCH:])
  assert any(not np.allclose(a.numpy(), b) for a, b in zip(_statistics(average), initial))


def test_statistics_every_must_be_a_positive_integer():
  with pytest.raises(errors.ConfigError, match="ssgan.ema_statistics_every"):
    _model(statistics_every=0)


def test_generate_samples_the_average_by_default_and_g_on_request():
  model = _model(decay=0.5, start=0)
  for step in range(1, 3):
    model.train_step(_step_data(step))
  z = tf.random.stateless_normal([4, Z_DIM], [1, 2])
  np.testing.assert_array_equal(model.generate(z), model.ema_generator(z, training=False))
  np.testing.assert_array_equal(model.generate(z, ema=False), model.generator(z, training=False))
  assert not np.allclose(model.generate(z), model.generate(z, ema=False))
  assert model.generator_kind == "ema"
  # The average is no optimizer's and no tape's: only G's weights are trained.
  assert [v.path for v in model.g_optimizer._trainable_variables] == [
      v.path for v in model.generator.trainable_variables]


# --- Checkpoints -----------------------------------------------------------------------

def test_checkpoint_restore_gives_the_same_average_bit_for_bit(tmp_path):
  model = _model(decay=0.5, start=1)
  for step in range(1, 4):
    model.train_step(_step_data(step))
  path = workdir_lib.make_checkpoint(model).save(str(tmp_path / "ckpt"))
  other = _model(decay=0.5, start=1, seed=3)
  assert not np.array_equal(other.ema_generator.variables[0].numpy(),
                            model.ema_generator.variables[0].numpy())
  checkpoints.restore(workdir_lib.make_checkpoint(other), path)
  for a, b in zip(other.ema_generator.variables, model.ema_generator.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize("statistics_every", [1, 3])
def test_resumed_training_gives_the_same_average_as_an_uninterrupted_run(tmp_path,
                                                                         statistics_every):
  straight = _model(decay=0.5, start=2, statistics_every=statistics_every)
  for step in range(1, 5):
    straight.train_step(_step_data(step))
  stopped = _model(decay=0.5, start=2, statistics_every=statistics_every)
  for step in range(1, 3):
    stopped.train_step(_step_data(step))
  path = workdir_lib.make_checkpoint(stopped).save(str(tmp_path / "ckpt"))
  resumed = _model(decay=0.5, start=2, seed=5, statistics_every=statistics_every)
  checkpoints.restore(workdir_lib.make_checkpoint(resumed), path)
  for step in range(3, 5):  # Averaging starts after step 2: the restored step counts.
    resumed.train_step(_step_data(step))
  for a, b in zip(resumed.ema_generator.variables, straight.ema_generator.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_checkpoints_without_an_average_do_not_restore_into_a_model_with_one(tmp_path):
  plain = _model(decay=None)
  assert plain.ema is None and plain.ema_generator is None
  path = workdir_lib.make_checkpoint(plain).save(str(tmp_path / "plain"))
  with pytest.raises(errors.WorkdirError, match="does not match the configured model"):
    checkpoints.restore(workdir_lib.make_checkpoint(_model()), path)
  # Training's resume says why.
  workdir = str(tmp_path / "w")
  tf.train.CheckpointManager(workdir_lib.make_checkpoint(plain),
                             workdir_lib.checkpoint_dir(workdir), max_to_keep=1).save()
  with_average = _model()
  with pytest.raises(errors.ConfigError, match=r"ckpt-1 was trained without an average of "
                     r"G's weights and the config keeps one \(ssgan.ema_decay\); a run keeps "
                     r"its choice: drop ssgan.ema_decay, or start a new --workdir."):
    train_lib.resume(workdir_lib.make_checkpoint(with_average), with_average, workdir,
                     set_aside_unreadable=False)
  # The other way round G, D and the rest restore; the average is ignored.
  averaged = _model(seed=2)
  path = workdir_lib.make_checkpoint(averaged).save(str(tmp_path / "averaged"))
  checkpoints.restore(workdir_lib.make_checkpoint(plain), path)
  np.testing.assert_array_equal(plain.generator.variables[0].numpy(),
                                averaged.generator.variables[0].numpy())
  # But training does not drop the average of a run that keeps one: the run's own command
  # could not resume it again.
  workdir = str(tmp_path / "averaged_run")
  tf.train.CheckpointManager(workdir_lib.make_checkpoint(averaged),
                             workdir_lib.checkpoint_dir(workdir), max_to_keep=1).save()
  with pytest.raises(errors.ConfigError, match=r"ckpt-1 keeps an average of G's weights and "
                     r"the config drops it \(ssgan.ema_decay = None\); a run keeps its "
                     r"choice: set ssgan.ema_decay as it was trained"):
    train_lib.resume(workdir_lib.make_checkpoint(plain), plain, workdir,
                     set_aside_unreadable=False)


# --- gin, evaluation, export -----------------------------------------------------------

@pytest.fixture
def tiny_gin():
  gin.clear_config()
  gin.parse_config(["networks.architecture = 'sndcgan'",
                    "networks.generator_kwargs = {'base_channels': 4}",
                    "networks.discriminator_kwargs = {'base_channels': 4}"])
  try:
    yield
  finally:
    gin.clear_config()


def test_build_ssgan_keeps_an_average_when_asked(tiny_gin):
  gin.parse_config(["ssgan.ema_decay = 0.999", "ssgan.ema_start_step = 10"])
  model = ssgan.build_ssgan(IMAGE_SHAPE, num_replicas=1, global_batch_size=8)
  assert (model.ema.decay, model.ema.start_step) == (0.999, 10)
  assert model.sampling_generator is model.ema_generator is not model.generator
  assert model.ema_generator.architecture == "sndcgan"
  for a, b in zip(model.ema_generator.variables, model.generator.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # It starts at G's weights.


def _pixel_classifier():
  # Its "features" are the pixels, so the metric sees exactly what was sampled.
  def network(images):
    flat = tf.reshape(images, [tf.shape(images)[0], -1])
    return {"pool_3": flat, "logits": flat[:, :10]}
  return classifiers.Classifier(network, name="pixels", family="inception")


def _is_records(model, **kwargs):
  return eval_lib.compute_metrics(model, data.get_source("mnist"), _pixel_classifier(),
                                  num_samples=20, metrics=("is",), batch_size=10, **kwargs)


def test_evaluation_names_the_averages_metrics_apart():
  model = _model(decay=0.5, start=0)
  model.train_step(_step_data(1))
  plain = _model(decay=None)
  for a, b in zip(plain.generator.variables, model.generator.variables):
    a.assign(b.numpy())
  [ema] = _is_records(model)
  [raw] = _is_records(model, generator="raw")
  [plain_record] = _is_records(plain)
  assert (ema["metric"], ema["generator"]) == ("is20_ema", "ema")
  assert (raw["metric"], raw["generator"]) == ("is20", "raw")
  assert plain_record["metric"] == "is20" and plain_record["generator"] == "raw"
  assert raw["value"] == plain_record["value"] != ema["value"]
  with pytest.raises(errors.ConfigError, match="keeps no EMA of G's weights"):
    _is_records(plain, generator="ema")
  with pytest.raises(errors.ConfigError, match="unknown evaluation.generator 'best'"):
    _is_records(model, generator="best")


def test_a_trained_workdir_resumes_and_exports_the_average(tmp_path, caplog):
  bindings = tiny_bindings(log_every=1) + ["ssgan.ema_decay = 0.5", "ssgan.ema_start_step = 1"]
  workdir = str(tmp_path / "w")

  def train(total_steps):
    gin.clear_config()
    gin.parse_config_files_and_bindings([QUICKSTART],
                                        bindings + [f"train.total_steps = {total_steps}"])
    try:
      return train_lib.train(workdir, tf.distribute.get_strategy())
    finally:
      gin.clear_config()

  train(2)
  model = train(3)  # Resumed from the checkpoint of step 2.
  restored = workdir_lib.restore_for_inference(workdir)
  assert restored.step == 3 and restored.model.generator_kind == "ema"
  for a, b in zip(restored.model.ema_generator.variables, model.ema_generator.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  with caplog.at_level("INFO", logger="absl"):
    export_dir = export_lib.export(workdir)
  gin.clear_config()
  assert (f"exporting step 3 to {export_dir}: it serves the EMA of G's weights "
          "(ssgan.ema_decay), as grids and evaluation sample" in caplog.messages)
  exported = export_lib.ExportedGenerator(export_dir)
  assert exported.metadata["generator"] == "ema" and exported.generator_kind == "ema"
  z = model.sample_z(4, tf.random.Generator.from_seed(0))
  np.testing.assert_allclose(exported.generate(z), model.generate(z), atol=1e-5)
  with pytest.raises(errors.ConfigError, match="serves only the EMA"):
    eval_lib.compute_metrics(exported, data.get_source("mnist"), _pixel_classifier(),
                             num_samples=20, metrics=("is",), generator="raw")
