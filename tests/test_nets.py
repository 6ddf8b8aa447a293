"""Tests of nets/: output structure and shapes, G's range, exact parameter counts, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies

from ssgan_tf import errors
from ssgan_tf.nets import ARCHITECTURES
from ssgan_tf.nets import build_networks
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import sndcgan

Z_DIM = 128


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


@pytest.fixture(scope="module")
def resnet_cifar():
  keras.utils.set_random_seed(0)
  return build_networks((32, 32, 3), architecture="resnet_cifar", z_dim=Z_DIM)


@pytest.fixture(scope="module")
def sndcgan_64():
  keras.utils.set_random_seed(0)
  return build_networks((32, 32, 3), architecture="sndcgan", z_dim=Z_DIM)


def test_resnet_cifar_parameter_counts_match_sngan_torch_mimicry(resnet_cifar):
  generator, discriminator = resnet_cifar
  # torch-mimicry's SSGANGenerator32 / SSGANDiscriminator32 have exactly these counts
  # (the SNGAN CIFAR ResNet with ngf = 256, ndf = 128, plus the 4-way rotation head).
  # PyTorch keeps SN's u in a buffer, not a parameter; here it is a non-trainable weight,
  # so trainable weights are the ones to compare.
  assert _count(generator.trainable_weights) == 4_276_739
  assert _count(discriminator.trainable_weights) == 1_054_341


def _norm_counts(normalization, channels, z_dim, hidden=32):
  """One normaliser of G over `channels`: BN gamma + beta; the self-modulation MLP
  (hidden, gamma, beta dense layers with biases); nothing."""
  if normalization == "batch_norm":
    return 2 * channels
  if normalization == "self_modulated":
    return (z_dim + 1) * hidden + 2 * (hidden + 1) * channels
  return 0


def _sndcgan_counts(resolution, channels, b, z_dim, normalization="batch_norm"):
  """Trainable parameters of SNDCGAN, from its layer shapes (kernels + biases, G's
  normalisers; SN's u is not trainable)."""
  bottom = resolution // 8
  g = (z_dim + 1) * bottom * bottom * 8 * b  # fc
  g += _norm_counts(normalization, bottom * bottom * 8 * b, z_dim)  # on the fc output
  for c_in, c_out in [(8 * b, 4 * b), (4 * b, 2 * b), (2 * b, b)]:
    g += 4 * 4 * c_in * c_out + c_out + _norm_counts(normalization, c_out, z_dim)  # deconv
  g += 3 * 3 * b * channels + channels  # 3x3 to_image
  d = 0
  plan = [(channels, b, 3), (b, 2 * b, 4), (2 * b, 2 * b, 3), (2 * b, 4 * b, 4),
          (4 * b, 4 * b, 3), (4 * b, 8 * b, 4), (8 * b, 8 * b, 3)]
  for c_in, c_out, k in plan:
    d += k * k * c_in * c_out + c_out
  features = bottom * bottom * 8 * b
  d += (features + 1) + (features * 4 + 4)  # gan head, rotation head
  return g, d


def test_sndcgan_parameter_counts_follow_layer_shapes(sndcgan_64):
  generator, discriminator = sndcgan_64
  g, d = _sndcgan_counts(32, 3, 64, Z_DIM)
  assert _count(generator.trainable_weights) == g
  assert _count(discriminator.trainable_weights) == d


@pytest.mark.parametrize("resolution, channels, base, normalization", [
    (16, 1, 4, "batch_norm"), (24, 3, 8, "batch_norm"), (16, 3, 4, "self_modulated"),
    (16, 3, 4, "none")])
def test_small_sndcgan_parameter_counts_follow_layer_shapes(resolution, channels, base,
                                                            normalization):
  generator, discriminator = build_networks(
      (resolution, resolution, channels), architecture="sndcgan", z_dim=16,
      generator_normalization=normalization,
      generator_kwargs={"base_channels": base}, discriminator_kwargs={"base_channels": base})
  g, d = _sndcgan_counts(resolution, channels, base, 16, normalization)
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == (g, d)


def test_resnet_cifar_with_self_modulated_bn_swaps_each_bn_for_its_mlp():
  generator, _ = build_networks((32, 32, 3), architecture="resnet_cifar", z_dim=Z_DIM,
                                generator_normalization="self_modulated")
  # 7 BNs of 256 channels (2 per block, the final one), each reading the whole z.
  expected = 4_276_739 - 7 * _norm_counts("batch_norm", 256, Z_DIM)
  expected += 7 * _norm_counts("self_modulated", 256, Z_DIM)
  assert _count(generator.trainable_weights) == expected


# (generator_kwargs, discriminator_kwargs, resolution): a little wider than the modules'
# TINY_KWARGS for resnet_cifar, and sndcgan at 16 px.
NORMALIZATION_NETS = {"sndcgan": ({"base_channels": 4}, {"base_channels": 4}, 16),
                      "resnet_cifar": ({"g_channels": 8}, {"d_channels": 8}, 32)}


def _tiny(architecture, normalization, **kwargs):
  g_kwargs, d_kwargs, resolution = NORMALIZATION_NETS[architecture]
  keras.utils.set_random_seed(0)
  return build_networks((resolution, resolution, 3), architecture=architecture, z_dim=8,
                        generator_normalization=normalization, generator_kwargs=g_kwargs,
                        discriminator_kwargs=d_kwargs, **kwargs), resolution


def _heads_loss(discriminator, images):
  out = discriminator(images, training=True)
  return (tf.reduce_sum(out["logits"] * tf.range(1.0, 1.0 + images.shape[0]))
          + tf.reduce_sum(out["rotation_logits"] * [[1.0, -2.0, 0.5, 3.0]]))


@pytest.mark.parametrize("normalization", ["self_modulated", "none"])
@pytest.mark.parametrize("architecture", ["sndcgan", "resnet_cifar"])
def test_one_forward_and_backward_pass_with_each_normalization_reaches_every_variable(
    architecture, normalization):
  (generator, discriminator), resolution = _tiny(architecture, normalization)
  with tf.GradientTape() as tape:
    images = generator(tf.random.stateless_normal([2, 8], seed=[0, 1]), training=True)
    loss = _heads_loss(discriminator, images)
  variables = generator.trainable_variables + discriminator.trainable_variables
  grads = tape.gradient(loss, variables)
  assert images.shape == (2, resolution, resolution, 3)
  assert -1.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
  assert [v.path for v, g in zip(variables, grads) if g is None] == []
  # The self-modulation MLPs and every kernel get a gradient (biases right before a
  # training-mode BN get exactly cancelled ones).
  assert [v.path for v, g in zip(variables, grads)
          if (v.name == "kernel" or "self_modulated" in v.path) and not np.any(g.numpy())] == []


@pytest.fixture(scope="module")
def mirrored():
  return strategies.own_mirrored_strategy()


@pytest.mark.parametrize("architecture", ["sndcgan", "resnet_cifar"])
def test_two_replicas_with_synchronized_self_modulated_bn_equal_one_device(mirrored,
                                                                           architecture):
  strategy = mirrored
  (one_g, one_d), _ = _tiny(architecture, "self_modulated")
  with strategy.scope():
    (generator, discriminator), _ = _tiny(architecture, "self_modulated", synchronized_bn=True)
  generator.set_weights(one_g.get_weights())
  discriminator.set_weights(one_d.get_weights())
  z = tf.concat([tf.random.stateless_normal([2, 8], seed=[3, 1]),
                 3.0 * tf.random.stateless_normal([2, 8], seed=[3, 2])], axis=0)
  variables = generator.trainable_variables + discriminator.trainable_variables

  @tf.function  # Eager replicas may issue their BN all-reduces in different orders.
  def step(z):
    with tf.GradientTape() as tape:
      images = generator(z, training=True)
      loss = _heads_loss(discriminator, images)
    return images, [g is not None for g in tape.gradient(loss, variables)]

  halves = strategy.experimental_distribute_values_from_function(
      lambda ctx: z[2 * ctx.replica_id_in_sync_group:2 * ctx.replica_id_in_sync_group + 2])
  images, reached = strategy.run(step, args=(halves,))
  assert all(all(r) for r in strategy.experimental_local_results(reached))
  two = np.concatenate([x.numpy() for x in strategy.experimental_local_results(images)])
  # Synchronized BN sums E[x], E[x^2] over replicas; one device computes E[(x - m)^2].
  np.testing.assert_allclose(two, one_g(z, training=True).numpy(), rtol=1e-4, atol=1e-5)


def test_spectral_norm_u_vectors_are_the_only_non_trainable_d_weights(resnet_cifar):
  _, discriminator = resnet_cifar
  # 4 blocks x 2 convs + 2 shortcuts + gan head + rotation head, one u each.
  assert [w.name for w in discriminator.non_trainable_weights] == ["u"] * 12
  assert all(w.name != "u" for w in discriminator.trainable_weights)


def test_no_spectral_norm_gives_plain_layers_and_no_u():
  _, discriminator = build_networks(
      (16, 16, 3), architecture="sndcgan", z_dim=8, d_spectral_norm=False,
      generator_kwargs={"base_channels": 4}, discriminator_kwargs={"base_channels": 4})
  assert discriminator.non_trainable_weights == []


def _check_outputs(generator, discriminator, resolution, channels, features):
  z = tf.random.stateless_normal([3, Z_DIM], seed=[0, 1]) * 3.0
  images = generator(z)
  assert images.shape == (3, resolution, resolution, channels)
  assert images.dtype == tf.float32
  assert -1.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
  out = discriminator(images)
  assert set(out) == {"logits", "rotation_logits", "features"}
  assert out["logits"].shape == (3,)
  assert out["rotation_logits"].shape == (3, 4)
  assert out["features"].shape == (3, features)
  assert all(v.dtype == tf.float32 for v in out.values())


def test_upsample2x_and_its_custom_gradient_equal_nearest_neighbour_resizing():
  x = tf.random.normal([2, 3, 5, 4], seed=1)
  weights = tf.random.normal([2, 6, 10, 4], seed=2)  # A loss with distinct pixel weights.
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    ours = resnet_ops.upsample2x(x)
    reference = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)
    loss_ours, loss_reference = tf.reduce_sum(ours * weights), tf.reduce_sum(reference * weights)
  np.testing.assert_array_equal(ours, reference)
  np.testing.assert_allclose(tape.gradient(loss_ours, x), tape.gradient(loss_reference, x),
                             rtol=1e-6, atol=1e-6)


# Activations written around grappler's remapper (see each one's docstring), against tf.nn.
OWN_ACTIVATIONS = {
    "sndcgan.leaky_relu": (lambda x: sndcgan.leaky_relu(x, alpha=0.1),
                           lambda x: tf.nn.leaky_relu(x, alpha=0.1)),
    "resnet_ops.block_input_relu": (resnet_ops.block_input_relu, tf.nn.relu),
}


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
@pytest.mark.parametrize("name", sorted(OWN_ACTIVATIONS))
def test_own_activations_and_their_gradients_equal_tf_nn_bit_for_bit(name, dtype):
  ours_fn, reference_fn = OWN_ACTIVATIONS[name]
  # Negative, zero and positive inputs, and both infinities.
  x = tf.cast(tf.concat([tf.random.normal([997], seed=3), [0.0, -0.0, np.inf, -np.inf]], 0),
              dtype)
  upstream = tf.cast(tf.random.normal([1001], seed=4), dtype)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    ours, reference = ours_fn(x), reference_fn(x)
  np.testing.assert_array_equal(tf.cast(ours, tf.float32), tf.cast(reference, tf.float32))
  np.testing.assert_array_equal(
      tf.cast(tape.gradient(ours, x, output_gradients=upstream), tf.float32),
      tf.cast(tape.gradient(reference, x, output_gradients=upstream), tf.float32))


@pytest.mark.parametrize("architecture, resolution, kwargs", [
    ("resnet_cifar", 32, None), ("resnet_cifar_compare_gan", 32, None), ("resnet5", 32, None),
    ("resnet_stl", 48, None), ("resnet_biggan", 32, ({"ch": 8}, {"ch": 8}))])
def test_grappler_optimizes_the_resnet_discriminators_gradient_without_an_error(
    capfd, architecture, resolution, kwargs):
  # Its remapper fused a block's conv + BiasAdd + Add with the next block's ReLU although
  # the sum also feeds that block's skip path, then failed on its own graph and logged
  # "E... remapper failed: ... missing node .../add" in every run of ResNet-CIFAR (and of
  # compare_gan's ResNet-CIFAR, whose "none" blocks keep a skip path too).
  g_kwargs, d_kwargs = kwargs or ARCHITECTURES[architecture].TINY_KWARGS
  _, discriminator = build_networks((resolution, resolution, 3), architecture=architecture,
                                    z_dim=64, generator_kwargs=g_kwargs,
                                    discriminator_kwargs=d_kwargs)

  @tf.function
  def gradient(images):
    with tf.GradientTape() as tape:
      loss = _heads_loss(discriminator, images)
    return tape.gradient(loss, discriminator.trainable_variables)

  gradient(tf.random.stateless_uniform([4, resolution, resolution, 3], seed=[0, 2]))
  assert "remapper failed" not in capfd.readouterr().err


def test_resnet_cifar_outputs(resnet_cifar):
  _check_outputs(*resnet_cifar, resolution=32, channels=3, features=128)


def test_sndcgan_outputs(sndcgan_64):
  _check_outputs(*sndcgan_64, resolution=32, channels=3, features=(32 // 8) ** 2 * 512)


def test_discriminator_output_of_an_example_does_not_depend_on_the_batch(sndcgan_64):
  # SSGAN passes real and fake images through D in one call; that is only sound if D
  # has no batch-dependent layer.
  generator, discriminator = sndcgan_64
  images = generator(tf.random.stateless_normal([4, Z_DIM], seed=[2, 3]))
  together = discriminator(images, training=False)["logits"].numpy()
  alone = discriminator(images[:1], training=False)["logits"].numpy()
  np.testing.assert_allclose(together[:1], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("architecture, resolution, normalization, g_kwargs, d_kwargs", [
    ("sndcgan", 16, "batch_norm", {"base_channels": 4}, {"base_channels": 4}),
    ("resnet_cifar", 32, "batch_norm", {"g_channels": 8}, {"d_channels": 8}),
    ("sndcgan", 16, "self_modulated", {"base_channels": 4}, {"base_channels": 4}),
    ("resnet_cifar_compare_gan", 32, "batch_norm", {"g_channels": 8}, {"d_channels": 8}),
    ("resnet_biggan", 32, "self_modulated", {"ch": 8}, {"ch": 8}),
])
def test_outputs_stay_float32_under_mixed_bfloat16(architecture, resolution, normalization,
                                                   g_kwargs, d_kwargs):
  keras.config.set_dtype_policy("mixed_bfloat16")
  try:
    generator, discriminator = build_networks(
        (resolution, resolution, 3), architecture=architecture, z_dim=8,
        generator_normalization=normalization,
        generator_kwargs=g_kwargs, discriminator_kwargs=d_kwargs)
    images = generator(tf.zeros([2, 8]), training=True)
    out = discriminator(images, training=True)
  finally:
    keras.config.set_dtype_policy("float32")
  assert images.dtype == tf.float32
  assert {k: v.dtype for k, v in out.items()} == {k: tf.float32 for k in out}


def test_synchronized_bn_flag_reaches_every_generator_bn():
  generator, _ = build_networks(
      (16, 16, 3), architecture="sndcgan", z_dim=8, synchronized_bn=True,
      generator_kwargs={"base_channels": 4}, discriminator_kwargs={"base_channels": 4})
  bns = [l for l in generator.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert len(bns) == 4 and all(bn.synchronized for bn in bns)


@pytest.mark.parametrize("architecture, shape, match", [
    ("resnet_cifar", (64, 64, 3), "resnet_cifar is a 32x32"),
    ("sndcgan", (28, 28, 1), "divisible by 8"),
    ("sndcgan", (32, 16, 3), "square"),
    ("resnet_stl", (32, 32, 3), "resnet_stl is a 48x48"),
    ("dcgan", (32, 32, 3), r"unknown architecture 'dcgan'.*resnet5.*resnet_biggan.*sndcgan"),
])
def test_bad_architecture_or_resolution_raises_readable_error(architecture, shape, match):
  with pytest.raises(ValueError, match=match):
    build_networks(shape, architecture=architecture)


@pytest.mark.parametrize("kwargs, match", [
    ({"generator_kwargs": {"base_channel": 4}},
     r"networks\.generator_kwargs has unknown key\(s\) \['base_channel'\] for sndcgan; it "
     r"takes \['base_channels', 'sbn_hidden_units', 'bn_momentum', 'bn_epsilon'\]\."),
    ({"discriminator_kwargs": {"base_channels": 4, "spectral_norm": False}},
     r"networks\.discriminator_kwargs has unknown key\(s\) \['spectral_norm'\] for sndcgan; "
     r"it takes \['base_channels'\]\."),  # Set by networks.d_spectral_norm.
    ({"generator_kwargs": {"normalization": "none"}},
     r"unknown key\(s\) \['normalization'\]"),  # Set by networks.generator_normalization.
])
def test_architecture_kwargs_it_does_not_take_are_named(kwargs, match):
  with pytest.raises(errors.ConfigError, match=match):
    build_networks((16, 16, 3), architecture="sndcgan", z_dim=8, **kwargs)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_builds_at_its_paper_resolution_with_its_tiny_widths(architecture):
  # What tools/benchmark.py --architectures and the tests read of each module.
  module = ARCHITECTURES[architecture]
  g_kwargs, d_kwargs = module.TINY_KWARGS
  resolution = module.PAPER_RESOLUTION
  generator, discriminator = build_networks(
      (resolution, resolution, 3), architecture=architecture, z_dim=8,
      generator_kwargs=g_kwargs, discriminator_kwargs=d_kwargs)
  images = generator(tf.zeros([1, 8]))
  assert images.shape == (1, resolution, resolution, 3)
  assert discriminator(images)["rotation_logits"].shape == (1, 4)
