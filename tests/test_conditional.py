"""The conditional baseline (Cond-GAN) and compare_gan's conditional SS-GAN: conditional BN
and the projection D on hand-worked numbers, the fakes' label distribution, labels
through the data pipeline and the train step (each row scored with its own label; the
alpha = beta = 0 step equals a hand-written conditional GAN step; two replicas equal one
device), and every consumer of a conditional G: resume, sample grid, export, evaluation.

Networks are tiny SNDCGANs (16x16x3 or MNIST's 32x32x1, base 4 channels); the end-to-end
runs are gin_configs/quickstart_cond.gin shrunk like the other tiny runs.
"""

import json
import os
import shutil
import subprocess
import sys

import gin
import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import strategies
from tiny_runs import ROOT
from tiny_runs import tiny_bindings
from test_export import assert_export_evaluates_like
from test_ssgan import _one_device_order
from test_train_lib import _state

from ssgan_tf import callbacks
from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf import export_lib
from ssgan_tf import labels
from ssgan_tf import losses
from ssgan_tf import gin_files
from ssgan_tf import rotation
from ssgan_tf import ssgan
from ssgan_tf import train_lib
from ssgan_tf import workdir as workdir_lib
from ssgan_tf.nets import build_networks
from ssgan_tf.nets import normalization as norms
from ssgan_tf.nets import spectral_norm as sn_lib
from ssgan_tf.nets.discriminator import Discriminator

IMAGE_SHAPE = (16, 16, 3)
Z_DIM = 8
BATCH = 8
CLASSES = 3
TINY = {"base_channels": 4}
QUICKSTART_COND = os.path.join(ROOT, "gin_configs", "quickstart_cond.gin")


# --- The layers on hand-worked numbers -------------------------------------------------

def test_conditional_bn_golden_value():
  # x = [1, 3] over the batch: mean 2, variance 1, so BN(x) = [-1, 1] / sqrt(1 + 1e-5).
  # Example 0 (class 0): -1 * gamma[0] + beta[0] = -2 + 1; example 1 (class 1): 5 - 1.
  layer = norms.ConditionalBatchNorm(num_classes=2)
  x = tf.constant([[1.0], [3.0]])
  layer(x, y=tf.constant([0, 1]), training=False)  # Build.
  layer.gamma.kernel.assign([[2.0], [5.0]])
  layer.beta.kernel.assign([[1.0], [-1.0]])
  out = layer(x, y=tf.constant([0, 1]), training=True).numpy()
  scale = 1 / np.sqrt(1 + 1e-5)
  np.testing.assert_allclose(out, [[-2 * scale + 1], [5 * scale - 1]], rtol=1e-6)
  # Swapping the labels swaps the modulation, not the standardisation.
  swapped = layer(x, y=tf.constant([1, 0]), training=True).numpy()
  np.testing.assert_allclose(swapped, [[-5 * scale - 1], [2 * scale + 1]], rtol=1e-6)


def _flat_d(num_classes, spectral_norm=False):
  d = Discriminator(keras.layers.Flatten(), spectral_norm=spectral_norm,
                    num_classes=num_classes)
  d(tf.zeros([1, 1, 1, 2]), labels=tf.zeros([1], tf.int32))
  return d


def test_projection_discriminator_golden_value():
  # features f = the 2 pixels; logit = w.f + b + <E[y], f>.
  d = _flat_d(num_classes=3)
  d.gan_head.kernel.assign([[1.0], [-1.0]])
  d.gan_head.bias.assign([0.5])
  d.projection.embedding.kernel.assign([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
  images = tf.constant([[[[3.0, 1.0]]], [[[3.0, 1.0]]], [[[0.0, 4.0]]]])
  out = d(images, labels=tf.constant([0, 1, 2]))
  # 3 - 1 + 0.5 = 2.5 plus 3, 2, 4.
  np.testing.assert_allclose(out["logits"], [5.5, 4.5, -3.5 + 4.0], rtol=1e-6)
  # Labels enter only the real/fake logit: rotation logits and features ignore them.
  other = d(images, labels=tf.constant([2, 2, 0]))
  np.testing.assert_array_equal(out["rotation_logits"], other["rotation_logits"])
  np.testing.assert_array_equal(out["features"], other["features"])
  assert [v.name for v in d.projection.trainable_variables] == ["kernel"]  # No bias.
  with pytest.raises(ValueError, match="conditional"):
    d(images)


def test_projection_embedding_is_spectrally_normalized_with_d():
  d = _flat_d(num_classes=3, spectral_norm=True)
  layer = d.projection.embedding
  assert isinstance(layer, sn_lib.SNDense) and layer.u.shape == (3, 1)  # "left": [K, 1].
  kernel, u = tf.constant(layer.kernel.numpy()), tf.constant(layer.u.numpy())
  images = tf.constant([[[[3.0, 1.0]]], [[[0.0, 4.0]]]])
  base = d(images, labels=tf.constant([0, 0]))["logits"] - d.projection(
      d.trunk(images), tf.constant([0, 0]))
  out = d(images, labels=tf.constant([1, 2]), training=True)["logits"]
  normalized, new_u = sn_lib.normalize_by_spectral_norm(kernel, u)
  expected = base + tf.reduce_sum(tf.gather(normalized, [1, 2]) * [[3.0, 1.0], [0.0, 4.0]], 1)
  np.testing.assert_allclose(out, expected, rtol=1e-5)
  np.testing.assert_allclose(layer.u.numpy(), new_u.numpy(), rtol=1e-6)  # One iteration.


def test_each_architecture_conditions_g_on_the_labels():
  for architecture, resolution, g_kwargs, d_kwargs in [
      ("sndcgan", 16, TINY, TINY), ("resnet_cifar", 32, {"g_channels": 4}, {"d_channels": 4})]:
    keras.utils.set_random_seed(0)
    g, d = build_networks((resolution, resolution, 3), architecture=architecture, z_dim=Z_DIM,
                          generator_kwargs=g_kwargs, discriminator_kwargs=d_kwargs,
                          conditional=True, num_classes=CLASSES)
    assert g.num_classes == d.num_classes == CLASSES
    # Every BN is conditional: 2 [K, C] kernels each (sndcgan: C = 128 after the dense
    # layer, then 16, 8, 4; resnet_cifar: 7 BNs of 4); D's projection is [K, F].
    bn_channels, features = {"sndcgan": (128 + 16 + 8 + 4, 128),
                             "resnet_cifar": (7 * 4, 4)}[architecture]
    count = lambda vs: sum(int(np.prod(v.shape)) for v in vs)  # noqa: E731
    assert count(v for v in g.trainable_variables if "conditional_batch_norm" in v.path) == (
        2 * CLASSES * bn_channels)
    assert not [v for v in g.trainable_variables if v.name in ("gamma", "beta")]  # No plain BN.
    assert count(d.projection.trainable_variables) == CLASSES * features
    # compare_gan's cBN kernels start near 0: give the classes distinct modulations.
    for v in g.trainable_variables:
      if "conditional_batch_norm" in v.path:
        v.assign(np.random.default_rng(1).normal(1.0, 0.5, v.shape))
    z = tf.random.stateless_normal([2, Z_DIM], seed=[0, 1])
    same_z = tf.concat([z[:1], z[:1]], 0)
    images = g(same_z, labels=tf.constant([0, 2]), training=False).numpy()
    assert np.abs(images[0] - images[1]).max() > 1e-3, architecture
    with pytest.raises(ValueError, match="conditional"):
      g(z)


# --- The fakes' labels -----------------------------------------------------------------

def test_drawn_labels_follow_the_label_distribution():
  n = 40_000
  probs = labels.probabilities(4, [1, 0, 2, 5])
  np.testing.assert_allclose(probs, [1 / 8, 0, 2 / 8, 5 / 8])
  rng = tf.random.Generator.from_seed(3)
  for drawn in (labels.draw_labels(n, 4, probs, rng=rng).numpy(),
                labels.draw_labels(n, 4, probs, seed=tf.constant([3, 0])).numpy(),
                labels.labels_from_z(tf.random.stateless_normal([n, 5], [3, 1]), 4, probs)):
    frequencies = np.bincount(drawn, minlength=4) / n
    assert frequencies[1] == 0  # A class without training images is never drawn.
    # Binomial standard errors are <= 0.0025; 4 of them.
    np.testing.assert_allclose(frequencies, probs, atol=0.01)
  uniform = labels.draw_labels(n, 10, rng=rng).numpy()
  assert uniform.min() == 0 and uniform.max() == 9
  np.testing.assert_allclose(np.bincount(uniform) / n, 0.1, atol=0.006)
  # Stateless draws repeat per seed; stateful ones advance.
  np.testing.assert_array_equal(labels.draw_labels(5, 4, probs, seed=tf.constant([3, 0])),
                                labels.draw_labels(5, 4, probs, seed=tf.constant([3, 0])))
  assert not np.array_equal(labels.draw_labels(50, 4, rng=rng), labels.draw_labels(50, 4, rng=rng))
  with pytest.raises(errors.ConfigError, match="3 non-negative numbers"):
    labels.probabilities(3, [1, 2])


def test_labels_from_z_are_a_function_of_each_row():
  z = tf.random.stateless_normal([6, 5], seed=[0, 2])
  whole = labels.labels_from_z(z, 10).numpy()
  np.testing.assert_array_equal(labels.labels_from_z(z[3:], 10), whole[3:])
  np.testing.assert_array_equal(labels.labels_from_z(tf.reverse(z, [0]), 10), whole[::-1])


def test_label_counts_of_mnist_folder_and_tfds(tmp_path):
  mnist = data.get_source("mnist")
  np.testing.assert_array_equal(mnist.label_counts("train"), [450] * 10)
  np.testing.assert_array_equal(mnist.label_counts("test"), [50] * 10)
  for name, count in (("a", 2), ("b", 1)):
    (tmp_path / name).mkdir()
    for i in range(count):
      PIL.Image.new("RGB", (4, 4)).save(tmp_path / name / f"{i}.png")
  folder = data.get_source("folder", image_dir=str(tmp_path), resolution=4)
  np.testing.assert_array_equal(folder.label_counts("train"), [2, 1])
  assert folder.class_names == ["a", "b"] and mnist.class_names == list("0123456789")

  def as_dataset(builder, *args, **kwargs):
    del builder, args, kwargs
    return tf.data.Dataset.from_tensor_slices(
        {"image": np.zeros([4, 32, 32, 3], np.uint8), "label": np.array([3, 3, 1, 9])})
  with tfds.testing.mock_data(as_dataset_fn=as_dataset,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    cifar = data.get_source("cifar10")
    np.testing.assert_array_equal(cifar.label_counts("train"), [0, 1, 0, 2] + [0] * 5 + [1])
    # TFDS' label names (here the mock's, "0".."9"; a prepared cifar10's, "airplane"...).
    assert cifar.class_names == tfds.builder("cifar10").info.features["label"].names
    assert len(cifar.class_names) == 10
  with pytest.raises(errors.ConfigError, match="no labels"):
    data.get_source("folder", image_dir=str(tmp_path / "a"), resolution=4).label_counts("train")


def test_train_pipeline_with_labels_keeps_the_images_and_pairs_each_with_its_label():
  mnist = data.get_source("mnist")
  images, digits = data._mnist_arrays()["train"]  # pylint: disable=protected-access
  label_of = {image.tobytes(): digit for image, digit in zip(data._to_unit_range(  # noqa
      images).numpy(), digits)}
  plain = data.train_pipeline(mnist, "train", 16, seed=5, start_batch=3)
  labelled = data.train_pipeline(mnist, "train", 16, seed=5, start_batch=3, with_labels=True)
  for a, b in zip(plain.take(2), labelled.take(2)):
    np.testing.assert_array_equal(a, b["images"])
    assert [label_of[x.tobytes()] for x in b["images"].numpy()] == list(b["labels"].numpy())


# --- The train step --------------------------------------------------------------------

def _networks(num_replicas=1):
  return build_networks(IMAGE_SHAPE, synchronized_bn=num_replicas > 1, architecture="sndcgan",
                        z_dim=Z_DIM, generator_kwargs=TINY, discriminator_kwargs=TINY,
                        conditional=True, num_classes=CLASSES)


def _cond_ssgan(num_replicas=1, alpha=0.2, beta=1.0, optimizers=None, seed=0, **kwargs):
  """A tiny conditional SNDCGAN SSGAN, compiled; call in the scope it is meant for."""
  keras.utils.set_random_seed(seed)
  generator, discriminator = _networks(num_replicas)
  model = ssgan.SSGAN(generator, discriminator,
                      batch=rotation.BatchSizes(BATCH, num_replicas, BATCH), z_dim=Z_DIM,
                      gan_loss=losses.NON_SATURATING, rotation_weight_g=alpha,
                      rotation_weight_d=beta, **kwargs)
  model.compile(*(optimizers() if optimizers else ssgan.build_optimizers()))
  # Distinct class modulations, so that a wrong label would change the numbers.
  for v in generator.trainable_variables:
    if "conditional_batch_norm" in v.path:
      v.assign(np.random.default_rng(seed + 1).normal(1.0, 0.5, v.shape))
  for v in discriminator.projection.trainable_variables:
    v.assign(np.random.default_rng(seed + 2).normal(0.0, 0.5, v.shape))
  return model


def _sgd():
  return keras.optimizers.SGD(0.5), keras.optimizers.SGD(0.5)


def _data(seed, disc_iters=1):
  rng = np.random.default_rng(seed)
  return {
      "images": rng.uniform(-1, 1, (disc_iters * BATCH,) + IMAGE_SHAPE).astype(np.float32),
      "labels": rng.integers(0, CLASSES, disc_iters * BATCH),
      "z": rng.normal(size=((disc_iters + 1) * BATCH, Z_DIM)).astype(np.float32),
      "fake_labels": rng.integers(0, CLASSES, (disc_iters + 1) * BATCH).astype(np.int32)}


def _variables(model):
  return model.generator.variables + model.discriminator.variables


def _hand_cond_gan_step(g, d, d_opt, g_opt, real, y_real, z_d, y_d, z_g, y_g):
  """A non-saturating conditional GAN step from scratch: D scores reals with their labels
  and fakes with theirs, in one call; then G."""
  fake = g(z_d, labels=y_d, training=True)
  with tf.GradientTape() as tape:
    logits = d(tf.concat([real, fake], 0), labels=tf.concat([y_real, y_d], 0),
               training=True)["logits"]
    d_loss = (tf.reduce_mean(tf.nn.softplus(-logits[:BATCH]))
              + tf.reduce_mean(tf.nn.softplus(logits[BATCH:])))
  grads = tape.gradient(d_loss, d.trainable_variables)
  d_opt.apply_gradients([(gr, v) for gr, v in zip(grads, d.trainable_variables) if gr is not None])
  with tf.GradientTape() as tape:
    logits = d(g(z_g, labels=y_g, training=True), labels=y_g, training=True)["logits"]
    g_loss = tf.reduce_mean(tf.nn.softplus(-logits))
  g_opt.apply_gradients(zip(tape.gradient(g_loss, g.trainable_variables), g.trainable_variables))


def test_zero_rotation_weights_give_the_hand_written_conditional_gan_step():
  model = _cond_ssgan(alpha=0.0, beta=0.0, optimizers=_sgd)
  hand = _cond_ssgan(alpha=0.0, beta=0.0, optimizers=_sgd, seed=5)
  for a, b in zip(_variables(hand), _variables(model)):
    a.assign(b)
  before = [v.numpy() for v in _variables(model)]
  x = _data(seed=1)
  model.train_step({k: tf.constant(v) for k, v in x.items()})
  c = {k: tf.constant(v) for k, v in x.items()}
  y_real = tf.cast(c["labels"], tf.int32)
  _hand_cond_gan_step(hand.generator, hand.discriminator, hand.d_optimizer, hand.g_optimizer,
                      c["images"], y_real, c["z"][:BATCH], c["fake_labels"][:BATCH],
                      c["z"][BATCH:], c["fake_labels"][BATCH:])
  for a, b in zip(_variables(model), _variables(hand)):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
  moved = [np.abs(a.numpy() - w).max() for a, w in zip(_variables(model), before)]
  assert np.median(moved) > 1e-3
  # And the labels matter: the same step with the fakes' labels permuted moves D elsewhere.
  for a, w in zip(_variables(hand), before):
    a.assign(w)
  hand.train_step({**c, "fake_labels": tf.roll(c["fake_labels"], 1, 0)})
  kernel = lambda m: m.discriminator.projection.embedding.kernel.numpy()  # noqa: E731
  assert np.abs(kernel(hand) - kernel(model)).max() > 1e-4


class _RecordingDiscriminator(Discriminator):
  """Records the labels of every call (eager only)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.seen = []

  def call(self, images, labels=None, training=False):
    self.seen.append((images.shape[0], None if labels is None else labels.numpy()))
    return super().call(images, labels=labels, training=training)


def test_every_row_d_scores_carries_its_own_images_label():
  keras.utils.set_random_seed(0)
  g, d = _networks()
  recording = _RecordingDiscriminator(d.trunk, num_classes=CLASSES, name="discriminator")
  recording(tf.zeros((1,) + IMAGE_SHAPE), labels=tf.zeros([1], tf.int32))
  del recording.seen[:]
  # A penalty that calls D on the step's reals (the gradient penalties call it on
  # interpolated or perturbed reals) scores them with the reals' labels, as compare_gan's.
  penalty = losses.Penalty("loss/penalty", 1.0, lambda d, real, fake, rng: d(
      real, training=True)["logits"], discriminator_calls=1)
  model = ssgan.SSGAN(g, recording, batch=rotation.BatchSizes(BATCH, 1, BATCH), z_dim=Z_DIM,
                      gan_loss=losses.NON_SATURATING, penalties=[penalty])
  model.compile(*ssgan.build_optimizers())
  x = {k: tf.constant(v) for k, v in _data(seed=2).items()}
  model.train_step(x)
  n = BATCH // 4  # The last quarter is rotated.
  y, y_fake = x["labels"].numpy(), x["fake_labels"].numpy()
  (d_rows, d_labels), (p_rows, p_labels), (g_rows, g_labels) = recording.seen
  assert p_rows == BATCH
  np.testing.assert_array_equal(p_labels, y)
  # D step: reals, their 3n rotated copies (labels of the last n), fakes.
  assert d_rows == BATCH + 3 * n + BATCH
  np.testing.assert_array_equal(d_labels, np.concatenate([y, np.tile(y[-n:], 3),
                                                          y_fake[:BATCH]]))
  # G step: fakes and their rotated copies, each with the label it was generated from
  # (compare_gan gives the rotated fakes the real labels).
  assert g_rows == BATCH + 3 * n
  np.testing.assert_array_equal(g_labels, np.concatenate([y_fake[BATCH:],
                                                          np.tile(y_fake[BATCH:][-n:], 3)]))


@pytest.fixture(scope="module")
def mirrored():
  return strategies.own_mirrored_strategy()


def test_two_replicas_take_the_conditional_ssgan_step_of_one_device(mirrored):
  one = _cond_ssgan(optimizers=_sgd)
  with mirrored.scope():
    two = _cond_ssgan(num_replicas=2, optimizers=_sgd, seed=1)
  for a, b in zip(_variables(two), _variables(one)):
    a.assign(b)
  initial = [v.numpy() for v in _variables(one)]
  x = _data(seed=4)
  per_replica = BATCH // 2
  n = per_replica // 4
  two.fit(tf.data.Dataset.from_tensors(x), epochs=1, verbose=0, shuffle=False)
  reals = _one_device_order(2, 1, per_replica, n)
  fakes = _one_device_order(2, 2, per_replica, n)
  one.train_step({"images": tf.constant(x["images"][reals]),
                  "labels": tf.constant(x["labels"][reals]),
                  "z": tf.constant(x["z"][fakes]),
                  "fake_labels": tf.constant(x["fake_labels"][fakes])})
  # Tolerance as test_ssgan.py's (synchronized BN's E[x^2] - E[x]^2, sum orders).
  for a, b in zip(_variables(two), _variables(one)):
    replicas = [v.numpy() for v in a.value.values]
    np.testing.assert_array_equal(replicas[0], replicas[1], err_msg=a.path)
    np.testing.assert_allclose(replicas[0], b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
  moved = [np.abs(b.numpy() - w).max() for b, w in zip(_variables(one), initial)]
  assert np.median(moved) > 1e-3


def test_generate_samples_labels_from_z_or_takes_them():
  model = _cond_ssgan(ema_decay=0.5, make_generator=lambda: _networks()[0])
  z = tf.random.stateless_normal([4, Z_DIM], seed=[1, 1])
  y = labels.labels_from_z(z, CLASSES)
  np.testing.assert_array_equal(model.generate(z), model.generate(z, y))
  np.testing.assert_array_equal(model.generate(z, ema=False),
                                model.generator(z, labels=y, training=False))
  other = (y + 1) % CLASSES
  assert np.abs(model.generate(z, other, ema=False).numpy()
                - model.generate(z, y, ema=False).numpy()).max() > 1e-4
  assert model.sample_labels(3).shape == (3,)
  # The EMA of a conditional G updates its own BN statistics on the G step's z and labels.
  statistics = lambda: [v.numpy() for v in model.ema_generator.non_trainable_variables]  # noqa
  before = statistics()
  model.train_step({"images": tf.zeros((BATCH,) + IMAGE_SHAPE), "labels": tf.zeros([BATCH])})
  assert all(np.any(a != b) for a, b in zip(before, statistics()))


@pytest.mark.parametrize("num_classes, bindings, match", [
    (None, ["networks.conditional = True"], "needs class labels, and this dataset has none"),
    (3, ["networks.conditional = True", "networks.generator_normalization = 'self_modulated'"],
     "self-modulated BN ignores the labels"),
    (3, ["networks.conditional = True", "networks.generator_normalization = 'none'"],
     "without BN has nowhere"),
    (3, ["networks.generator_normalization = 'conditional'"], "set networks.conditional = True"),
    (3, ["ssgan.label_distribution = 'data'"], "unknown ssgan.label_distribution 'data'"),
    (3, ["networks.conditional = True"], "needs the training split's label counts"),
])
def test_bad_conditional_settings_raise_one_line_config_errors(num_classes, bindings, match):
  gin.clear_config()
  gin.parse_config(["networks.architecture = 'sndcgan'",
                    "networks.generator_kwargs = {'base_channels': 4}",
                    "networks.discriminator_kwargs = {'base_channels': 4}", *bindings])
  try:
    with pytest.raises(errors.ConfigError, match=match):
      ssgan.build_ssgan(IMAGE_SHAPE, 1, global_batch_size=8, num_classes=num_classes)
  finally:
    gin.clear_config()


def test_model_info_of_an_unconditional_workdir_refuses_a_conditional_model(tmp_path):
  info = {"image_shape": [32, 32, 1], "architecture": "sndcgan", "z_dim": 64,
          "z_distribution": "normal"}
  workdir_lib.check_model_info(str(tmp_path), info, write=True)
  for conditional in ({**info, "num_classes": 10}, {**info, "num_classes": 10,
                                                    "label_counts": [1] * 10}):
    with pytest.raises(errors.WorkdirError, match="holds a different model"):
      workdir_lib.check_model_info(str(tmp_path), conditional, write=True)


# --- A conditional run end to end: resume, grid, export, evaluation --------------------

def _train(workdir, total_steps):
  gin.clear_config()
  gin_files.parse([QUICKSTART_COND], tiny_bindings(log_every=1) + [  # Resolves its include.
      f"train.total_steps = {total_steps}", "train.checkpoint_every = 1",
      "optimizers.g_lr = 0.05"])
  try:
    return train_lib.train(str(workdir), tf.distribute.get_strategy())
  finally:
    gin.clear_config()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """quickstart_cond, tiny: 2 steps straight (checkpoints 1 and 2); a copy of its workdir
  cut back to checkpoint 1, resumed to 2."""
  straight = tmp_path_factory.mktemp("straight")
  model = _train(straight, 2)
  result = {"straight": _state(model), "model": model, "workdir": str(straight)}
  stopped = tmp_path_factory.mktemp("stopped") / "w"
  shutil.copytree(straight, stopped)
  checkpoints = os.path.join(stopped, workdir_lib.CHECKPOINTS)
  for name in os.listdir(checkpoints):
    if name.startswith("ckpt-2"):
      os.remove(os.path.join(checkpoints, name))
  tf.compat.v1.train.update_checkpoint_state(checkpoints, os.path.join(checkpoints, "ckpt-1"))
  result["resumed"] = _state(_train(stopped, 2))
  return result


def test_a_resumed_conditional_run_equals_an_uninterrupted_one(runs):
  assert len(runs["straight"]) == len(runs["resumed"])
  for a, b in zip(runs["straight"], runs["resumed"]):
    np.testing.assert_array_equal(a, b)


def test_the_workdir_records_the_classes_and_the_grid_one_class_per_row(runs):
  with open(os.path.join(runs["workdir"], workdir_lib.MODEL_INFO)) as f:
    info = json.load(f)
  assert info["num_classes"] == 10 and info["label_counts"] == [450] * 10
  assert info["class_names"] == list("0123456789")
  grid = np.asarray(PIL.Image.open(os.path.join(runs["workdir"], "samples",
                                                "fakes_00000002.png")))
  assert grid.shape == (8 * 32, 8 * 32)
  model = runs["model"]
  fixed_z = model.sample_z(64, tf.random.Generator.from_seed(1))  # train.seed + 1.
  expected = model.generate(fixed_z, labels.grid_labels(64, 10, 8))
  np.testing.assert_array_equal(
      grid, callbacks.grid(expected).numpy()[..., 0])


@pytest.fixture(scope="module")
def export_dir(runs):
  try:
    return export_lib.export(runs["workdir"], include_discriminator=True)
  finally:
    gin.clear_config()


def test_an_exported_conditional_g_serves_z_alone_or_with_labels(runs, export_dir):
  model = runs["model"]
  loaded = tf.saved_model.load(export_dir)
  signatures = loaded.signatures
  z = tf.random.stateless_normal([5, 64], seed=[2, 2])
  served = signatures["serving_default"](z=z)
  np.testing.assert_array_equal(served["labels"], labels.labels_from_z(
      z, 10, model.label_probabilities))
  np.testing.assert_allclose(served["images"], model.generate(z), atol=1e-5)
  y = tf.constant([0, 1, 2, 3, 9], tf.int32)
  np.testing.assert_allclose(signatures["with_labels"](z=z, labels=y)["images"],
                             model.generate(z, y), atol=1e-5)
  sampled = signatures["sample"](num_samples=tf.constant(3), seed=tf.constant(4, tf.int64))
  np.testing.assert_allclose(signatures["serving_default"](z=sampled["z"])["images"],
                             sampled["images"], atol=1e-6)
  images = model.generate(z)
  np.testing.assert_allclose(signatures["discriminate"](images=images, labels=y)["logits"],
                             model.discriminator(images, labels=y)["logits"], rtol=1e-4,
                             atol=1e-5)
  metadata = {k: v.numpy() for k, v in signatures["metadata"]().items()}
  assert metadata["num_classes"] == 10 and list(metadata["label_counts"]) == [450] * 10
  assert [name.decode() for name in metadata["class_names"]] == list("0123456789")
  with open(os.path.join(export_dir, export_lib.EXTRA_DIR, export_lib.METADATA_FILE)) as f:
    assert json.load(f)["class_names"] == list("0123456789")


def test_exported_signatures_refuse_labels_out_of_range_or_of_another_length(export_dir):
  signatures = tf.saved_model.load(export_dir).signatures
  z = tf.random.stateless_normal([2, 64], seed=[3, 3])
  images = tf.zeros([2, 32, 32, 1])
  for bad in ([0, 10], [-1, 3], [100, 0]):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be in 0\.\.9"):
      signatures["with_labels"](z=z, labels=tf.constant(bad))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be in 0\.\.9"):
      signatures["discriminate"](images=images, labels=tf.constant(bad))
  # One label would otherwise broadcast over the batch.
  with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per row of z"):
    signatures["with_labels"](z=z[:1], labels=tf.constant([1, 2]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per row of images"):
    signatures["discriminate"](images=images, labels=tf.constant([1]))
  for bad in ([[1], [2]], 1):  # Labels of another rank failed deep in G or D.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor labels"):
      signatures["with_labels"](z=z, labels=tf.constant(bad))
  exported = export_lib.ExportedGenerator(export_dir)  # What evaluation of an export calls.
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be in 0\.\.9"):
    exported.generate(z, tf.constant([9, 10]))


def test_the_sample_tool_keeps_each_images_z_and_class(export_dir, tmp_path):
  output = tmp_path / "samples.npz"
  run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "sample.py"),
                        f"--export_dir={export_dir}", f"--output={output}",
                        "--num_samples=6", "--seed=5"],
                       cwd=ROOT, capture_output=True, text=True, check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  arrays = np.load(output)
  assert sorted(arrays) == ["images", "labels", "z"]
  served = tf.saved_model.load(export_dir).signatures["with_labels"](
      z=arrays["z"], labels=arrays["labels"])
  np.testing.assert_allclose(arrays["images"], served["images"], atol=1e-6)
  assert arrays["images"].shape == (6, 32, 32, 1) and arrays["labels"].shape == (6,)


def test_a_conditional_export_evaluates_to_its_checkpoints_numbers(runs, export_dir):
  restored = assert_export_evaluates_like(export_dir, runs["model"], num_fake_sets=1)
  assert restored.model.num_classes == 10


def test_restore_for_inference_rebuilds_the_conditional_model(runs):
  try:
    restored = workdir_lib.restore_for_inference(runs["workdir"])
  finally:
    gin.clear_config()
  model = restored.model
  assert model.num_classes == 10 and model.label_counts == (450,) * 10
  z = tf.random.stateless_normal([3, 64], seed=[5, 5])
  np.testing.assert_array_equal(model.generate(z), runs["model"].generate(z))
