"""Tests of compare_gan's ResNet architectures (resnet_cifar_compare_gan, resnet5, resnet_stl,
resnet_biggan) and their blocks: exact parameter counts from compare_gan's layer shapes,
one forward and backward pass per architecture and normalisation on one device and on
two replicas, the blocks against NumPy, and readable configuration errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies

from ssgan_tf import errors
from ssgan_tf.nets import build_networks
from ssgan_tf.nets import resnet_ops
from ssgan_tf.nets import resnet_biggan


def _count(variables):
  return sum(int(np.prod(v.shape)) for v in variables)


# --- Parameter counts from compare_gan's layer shapes ----------------------------------
# Kernels and biases (compare_gan's ops.conv2d / ops.linear have a bias unless noted),
# BN gamma + beta, the sBN MLP; SN's u is not trainable. D includes our two heads:
# real/fake [F -> 1] (compare_gan's final fc) and rotation [F -> 4] (compare_gan
# ssgan.py:97-101, "score_classify").

def _conv(k, c_in, c_out, bias=True):
  return k * k * c_in * c_out + (c_out if bias else 0)


def _dense(n_in, n_out, bias=True):
  return n_in * n_out + (n_out if bias else 0)


def _norm(kind, channels, cond_dim, hidden=32):
  """One normaliser over `channels`, conditioned on a `cond_dim` vector."""
  if kind == "batch_norm":
    return 2 * channels
  if kind == "none":
    return 0
  if kind == "self_modulated":  # arch_ops.py:401-420: hidden, gamma, beta.
    if hidden == 0:
      return 2 * _dense(cond_dim, channels)
    return _dense(cond_dim, hidden) + 2 * _dense(hidden, channels)
  if kind == "conditional":  # arch_ops.py:423-445: gamma, beta kernels, no bias.
    return 2 * _dense(cond_dim, channels, bias=False)
  raise ValueError(kind)


def _g_block(c_in, c_out, shortcut_kernel, kind, cond_dim):
  """bn1, conv1 3x3, bn2, conv2 3x3, conv shortcut (resnet_ops.py:113-165)."""
  return (_norm(kind, c_in, cond_dim) + _conv(3, c_in, c_out) + _norm(kind, c_out, cond_dim)
          + _conv(3, c_out, c_out) + _conv(shortcut_kernel, c_in, c_out))


def _d_block(c_in, c_out, shortcut_kernel, shortcut=True):
  return (_conv(3, c_in, c_out) + _conv(3, c_out, c_out)
          + (_conv(shortcut_kernel, c_in, c_out) if shortcut else 0))


def _non_local(c):
  """theta, phi C -> C/8, g C -> C/2, out C/2 -> C (1x1, no bias), sigma."""
  return 2 * c * (c // 8) + 2 * c * (c // 2) + 1


def _heads(features):
  return _dense(features, 1) + _dense(features, 4)


def _resnet_cifar_compare_gan_counts(channels, g, d, z_dim, kind, hierarchical=False,
                                     num_classes=None):
  """`num_classes`: conditional (kind "conditional"): the blocks' cBN reads the one-hot y,
  or hierarchically [z chunk, y], the final one y; D's projection `[K, d]`, no bias
  (resnet_cifar.py:76-107, 160-165)."""
  chunk = z_dim // 4 if hierarchical else z_dim  # 3 blocks + the dense layer.
  block_cond = final_cond = z_dim
  if num_classes:
    block_cond, final_cond = (chunk + num_classes if hierarchical else num_classes), num_classes
  elif hierarchical:
    block_cond = chunk
  gen = _dense(chunk, 4 * 4 * g) + 3 * _g_block(g, g, 3, kind, block_cond)
  gen += _norm(kind, g, final_cond) + _conv(3, g, channels)  # Final norm: all of z, or y.
  disc = _d_block(channels, d, 3) + 3 * _d_block(d, d, 3) + _heads(d)
  disc += num_classes * d if num_classes else 0
  return gen, disc


def _resnet5_counts(channels, ch, z_dim, kind, num_classes=None):
  """`num_classes`: every cBN reads the one-hot y; D's projection `[K, F]` (ours:
  compare_gan's resnet5 D has no project_y)."""
  cond = num_classes or z_dim
  gm, dm = (8, 8, 4, 4, 2, 1), (1, 2, 4, 4, 8, 8)
  gen = _dense(z_dim, 4 * 4 * ch * gm[0])
  gen += sum(_g_block(ch * gm[i], ch * gm[i + 1], 3, kind, cond) for i in range(5))
  gen += _norm(kind, ch * gm[5], cond) + _conv(3, ch * gm[5], channels)
  disc = _d_block(channels, ch, 3)
  disc += sum(_d_block(ch * dm[i], ch * dm[i + 1], 3) for i in range(5)) + _heads(ch * dm[5])
  disc += num_classes * ch * dm[5] if num_classes else 0
  return gen, disc


def _resnet_stl_counts(channels, ch, z_dim, kind, num_classes=None):
  """As `_resnet5_counts` for `num_classes`."""
  cond = num_classes or z_dim
  gen = _dense(z_dim, 6 * 6 * 8 * ch)
  gen += sum(_g_block(a * ch, b * ch, 3, kind, cond) for a, b in [(8, 4), (4, 2), (2, 1)])
  gen += _norm(kind, ch, cond) + _conv(3, ch, channels)
  widths = [channels, ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch]
  disc = sum(_d_block(a, b, 3) for a, b in zip(widths, widths[1:])) + _heads(16 * ch)
  disc += num_classes * 16 * ch if num_classes else 0
  return gen, disc


_BIGGAN_G = {32: [4, 4, 4, 4], 64: [16, 16, 8, 4, 2], 128: [16, 16, 8, 4, 2, 1]}
_BIGGAN_D = {32: [2, 2, 2, 2], 64: [2, 4, 8, 16, 16], 128: [1, 2, 4, 8, 16, 16]}


def _resnet_biggan_counts(resolution, channels, ch, z_dim, kind, g_attention="B4",
                          d_attention="B1", labels=None, rotation_head=True):
  """`labels=(num_classes, embed_dim)`: compare_gan's conditional BigGAN (embed_y without
  bias; the blocks' cBN reads [z chunk, embedded y]; D's projection embedding, no bias)."""
  g_widths = [ch * m for m in _BIGGAN_G[resolution]]
  blocks = len(g_widths) - 1
  hierarchical = kind in ("self_modulated", "conditional")
  z0 = cond = z_dim // (blocks + 1) if hierarchical else z_dim
  gen = 0
  if labels:
    gen += _dense(labels[0], labels[1], bias=False)
    cond += labels[1]
  gen += _dense(z0, 4 * 4 * g_widths[0])
  for i, (a, b) in enumerate(zip(g_widths, g_widths[1:])):
    gen += _g_block(a, b, 1, kind, cond) + (_non_local(b) if f"B{i + 1}" == g_attention else 0)
  gen += 2 * g_widths[-1] + _conv(3, g_widths[-1], channels)  # Plain final BN, 3x3 conv.
  d_widths = [ch * m for m in _BIGGAN_D[resolution]]
  disc = 0
  for i, (a, b) in enumerate(zip([channels] + d_widths, d_widths)):
    disc += _d_block(a, b, 1, shortcut=a != b) + (_non_local(b) if f"B{i + 1}" == d_attention
                                                    else 0)
  features = d_widths[-1]
  disc += _heads(features) if rotation_head else _dense(features, 1)
  if labels:
    disc += labels[0] * features
  return gen, disc


def test_biggan_count_formula_reproduces_compare_gans_published_counts():
  # compare_gan resnet_biggan.py:37-40 and resnet_biggan_test.py: the conditional 128x128
  # BigGAN (z_dim 120, 1000 classes, 128-d label embedding) has G 70,433,988 and
  # D 87,982,370 parameters. The same formula, unconditional, is checked against our
  # networks below (tiny widths).
  assert _resnet_biggan_counts(128, 3, 96, 120, "conditional", labels=(1000, 128),
                               rotation_head=False) == (70_433_988, 87_982_370)


def test_conditional_biggan_128_has_compare_gans_published_parameter_counts():
  # The real layers: networks.conditional with 1000 classes at compare_gan's BigGAN
  # settings; D adds only our rotation head [1536 -> 4] to compare_gan's 87,982,370.
  generator, discriminator = _build("resnet_biggan", 128, 120, conditional=True,
                                    num_classes=1000)
  rotation_head = _dense(16 * 96, 4)
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == (
      70_433_988, 87_982_370 + rotation_head)
  assert generator.embed_y.kernel.shape == (1000, 128)
  assert generator.blocks[0].bn1.gamma.kernel.shape == (20 + 128, 16 * 96)  # [z_i, e(y)].
  assert discriminator.projection.embedding.kernel.shape == (1000, 16 * 96)


# Tiny conditional networks: (architecture, resolution, z_dim, G kwargs, D kwargs).
# (resnet_stl shares resnet5's conditioning code; its formula is checked at one width.)
TINY_CONDITIONAL = [
    ("resnet_cifar_compare_gan", 32, 12, {"g_channels": 8, "hierarchical_z": True},
     {"d_channels": 8}),
    ("resnet5", 32, 12, {"ch": 4}, {"ch": 4}),
    ("resnet_biggan", 32, 12, {"ch": 8}, {"ch": 8}),
]


@pytest.mark.parametrize("architecture, resolution, z_dim, g_kwargs, d_kwargs",
                         TINY_CONDITIONAL)
def test_tiny_conditional_counts_and_a_pass_reaching_every_variable(
    architecture, resolution, z_dim, g_kwargs, d_kwargs):
  k = 5
  generator, discriminator = _build(architecture, resolution, z_dim, g_kwargs=g_kwargs,
                                    d_kwargs=d_kwargs, conditional=True, num_classes=k)
  expected = {
      "resnet_cifar_compare_gan": lambda: _resnet_cifar_compare_gan_counts(
          3, 8, 8, z_dim, "conditional", g_kwargs.get("hierarchical_z", False), k),
      "resnet5": lambda: _resnet5_counts(3, 4, z_dim, "conditional", k),
      "resnet_stl": lambda: _resnet_stl_counts(3, 4, z_dim, "conditional", k),
      "resnet_biggan": lambda: _resnet_biggan_counts(32, 3, 8, z_dim, "conditional",
                                                     labels=(k, 128)),
  }[architecture]()
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == expected
  labels = tf.constant([0, 4])
  z = tf.random.stateless_normal([2, z_dim], seed=[0, 1])
  with tf.GradientTape() as tape:
    images = generator(z, labels=labels, training=True)
    out = discriminator(images, labels=labels, training=True)
    loss = tf.reduce_sum(out["logits"] * [1.0, -0.7]) + tf.reduce_sum(out["rotation_logits"])
  variables = generator.trainable_variables + discriminator.trainable_variables
  grads = tape.gradient(loss, variables)
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing
  # Every label-reading weight moves: the cBN maps, the embeddings, the projection.
  dead = [v.path for v, g in zip(variables, grads)
          if ("conditional_batch_norm" in v.path or "embed" in v.path)
          and not np.any(g.numpy())]
  assert not dead


def _build(architecture, resolution, z_dim, normalization="batch_norm", g_kwargs=None,
           d_kwargs=None, **kwargs):  # kwargs: build_networks'.
  keras.utils.set_random_seed(0)
  return build_networks((resolution, resolution, 3), architecture=architecture, z_dim=z_dim,
                        generator_normalization=normalization, generator_kwargs=g_kwargs,
                        discriminator_kwargs=d_kwargs, **kwargs)


# Default widths: the formulas count compare_gan's layer shapes, independently of Keras.
# (BigGAN at 128 px and full width: the conditional test above; the formula's
# unconditional form: the tiny widths below, at 32 and 64 px.)
@pytest.mark.parametrize("architecture, resolution, z_dim, normalization", [
    ("resnet_cifar_compare_gan", 32, 128, "batch_norm"),
    ("resnet5", 128, 128, "batch_norm"),
    ("resnet_stl", 48, 128, "batch_norm"),
])
def test_default_width_parameter_counts_follow_compare_gans_layer_shapes(
    architecture, resolution, z_dim, normalization):
  formula = {
      "resnet_cifar_compare_gan": lambda: _resnet_cifar_compare_gan_counts(
          3, 256, 128, z_dim, normalization),
      "resnet5": lambda: _resnet5_counts(3, 64, z_dim, normalization),
      "resnet_stl": lambda: _resnet_stl_counts(3, 64, z_dim, normalization),
  }[architecture]()
  generator, discriminator = _build(architecture, resolution, z_dim, normalization)
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == formula


# Tiny widths; (architecture, resolution, z_dim, G kwargs, D kwargs).
TINY = [
    ("resnet_cifar_compare_gan", 32, 12, {"g_channels": 8}, {"d_channels": 8}),
    ("resnet5", 32, 12, {"ch": 4}, {"ch": 4}),
    ("resnet_stl", 48, 12, {"ch": 4}, {"ch": 4}),
    ("resnet_biggan", 32, 12, {"ch": 8}, {"ch": 8}),
    ("resnet_biggan", 64, 15, {"ch": 2, "blocks_with_attention": "B2"},
     {"ch": 2, "blocks_with_attention": ""}),
]
# (height, channels) of each D block's output at those widths (the probe reads them).
BLOCK_SHAPES = {
    ("resnet_cifar_compare_gan", 32): [(16, 8), (8, 8), (8, 8), (8, 8)],
    ("resnet5", 32): [(16, 4), (8, 8), (4, 16), (2, 16), (1, 32), (1, 32)],
    ("resnet_stl", 48): [(24, 4), (12, 8), (6, 16), (3, 32), (3, 64)],
    ("resnet_biggan", 32): [(16, 16), (8, 16), (4, 16), (4, 16)],
}
# Every architecture with plain and self-modulated BN; "none" on two of them.
TINY_CASES = ([case + (norm,) for case in TINY for norm in ("batch_norm", "self_modulated")]
              + [TINY[0] + ("none",), TINY[3] + ("none",)])


def _tiny_counts(architecture, resolution, z_dim, g_kwargs, d_kwargs, normalization):
  if architecture == "resnet_cifar_compare_gan":
    return _resnet_cifar_compare_gan_counts(3, g_kwargs["g_channels"], d_kwargs["d_channels"],
                                            z_dim, normalization)
  if architecture == "resnet5":
    return _resnet5_counts(3, g_kwargs["ch"], z_dim, normalization)
  if architecture == "resnet_stl":
    return _resnet_stl_counts(3, g_kwargs["ch"], z_dim, normalization)
  return _resnet_biggan_counts(
      resolution, 3, g_kwargs["ch"], z_dim, normalization,
      g_attention=g_kwargs.get("blocks_with_attention", "B4"),
      d_attention=d_kwargs.get("blocks_with_attention", "B1"))


def test_hierarchical_z_in_compare_gans_resnet_cifar_gives_each_block_a_chunk():
  generator, discriminator = _build(
      "resnet_cifar_compare_gan", 32, 16, "self_modulated",
      {"g_channels": 8, "hierarchical_z": True}, {"d_channels": 8})
  expected = _resnet_cifar_compare_gan_counts(3, 8, 8, 16, "self_modulated", hierarchical=True)
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == expected
  assert generator.blocks[0].bn1.hidden.kernel.shape == (4, 32)  # A quarter of z.
  assert generator.final_norm.hidden.kernel.shape == (16, 32)  # All of z (compare_gan).
  _check_forward_backward(generator, discriminator, 32, 16)


# --- One forward and backward pass -----------------------------------------------------

def _loss(discriminator, images, training):
  out = discriminator(images, training=training)
  # Fixed weights, so that no gradient cancels by symmetry.
  w = tf.constant([[1.0, -2.0, 0.5, 3.0]])
  return tf.reduce_sum(out["logits"] * [1.0, -0.7]) + tf.reduce_sum(out["rotation_logits"] * w)


def _open_attention(network):
  # sigma starts at 0, which blocks the gradient to the attention convs; open it.
  for layer in network._flatten_layers():  # pylint: disable=protected-access
    if isinstance(layer, resnet_ops.NonLocalBlock):
      layer.sigma.assign(0.5)


def _check_forward_backward(generator, discriminator, resolution, z_dim):
  _open_attention(generator)
  _open_attention(discriminator)
  z = tf.random.stateless_normal([2, z_dim], seed=[0, 1])
  with tf.GradientTape() as tape:
    images = generator(z, training=True)
    loss = _loss(discriminator, images, training=True)
  variables = generator.trainable_variables + discriminator.trainable_variables
  grads = tape.gradient(loss, variables)
  assert images.shape == (2, resolution, resolution, 3) and images.dtype == tf.float32
  assert -1.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing
  assert all(np.isfinite(g.numpy()).all() for g in grads)
  # Biases right before a training-mode BN get exactly cancelled gradients; every kernel,
  # the self-modulation MLPs and attention's sigma must move.
  dead = [v.path for v, g in zip(variables, grads)
          if (v.name in ("kernel", "sigma") or "self_modulated" in v.path)
          and not np.any(g.numpy())]
  assert not dead


@pytest.mark.parametrize("architecture, resolution, z_dim, g_kwargs, d_kwargs, normalization",
                         TINY_CASES)
def test_tiny_counts_and_one_forward_and_backward_pass_reaching_every_variable(
    architecture, resolution, z_dim, g_kwargs, d_kwargs, normalization):
  generator, discriminator = _build(architecture, resolution, z_dim, normalization,
                                    g_kwargs, d_kwargs)
  expected = _tiny_counts(architecture, resolution, z_dim, g_kwargs, d_kwargs, normalization)
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == expected
  _check_forward_backward(generator, discriminator, resolution, z_dim)
  out = discriminator(generator(tf.zeros([3, z_dim])))
  assert set(out) == {"logits", "rotation_logits", "features"}
  assert out["logits"].shape == (3,) and out["rotation_logits"].shape == (3, 4)
  blocks = BLOCK_SHAPES.get((architecture, resolution))
  if blocks:
    assert [(x.shape[1], x.shape[-1]) for x in discriminator.trunk.block_outputs(
        tf.zeros([2, resolution, resolution, 3]))] == blocks
    assert out["features"].shape == (3, blocks[-1][1])


def test_biggan_with_spectral_norm_in_g_only_counts_and_passes_forward_and_backward():
  # compare_gan's G.spectral_norm (on in its BigGAN config): SN adds only u vectors, which
  # are not trainable; here D without SN, so its attention convs are plain.
  generator, discriminator = _build("resnet_biggan", 32, 12, "self_modulated",
                                    {"ch": 8, "spectral_norm": True}, {"ch": 8},
                                    d_spectral_norm=False)
  expected = _resnet_biggan_counts(32, 3, 8, 12, "self_modulated")
  assert (_count(generator.trainable_weights), _count(discriminator.trainable_weights)) == expected
  assert discriminator.non_trainable_weights == []
  assert {w.name for w in generator.non_trainable_weights} == {"u", "moving_mean",
                                                               "moving_variance"}
  _check_forward_backward(generator, discriminator, 32, 12)


# --- Two replicas ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mirrored():
  return strategies.own_mirrored_strategy()


def _split(strategy, tensor):
  n = tensor.shape[0] // strategy.num_replicas_in_sync
  return strategy.experimental_distribute_values_from_function(
      lambda ctx: tensor[ctx.replica_id_in_sync_group * n:(ctx.replica_id_in_sync_group + 1) * n])


# The synchronisation lives in nets/normalization.py, which every architecture shares
# (test_nets.py checks it for sndcgan and resnet_cifar); BigGAN's hierarchical z is the
# one other way z reaches the normalisers.
@pytest.mark.parametrize("architecture, resolution, z_dim, g_kwargs, d_kwargs",
                         [case for case in TINY if case[:2] == ("resnet_biggan", 32)])
def test_two_replicas_with_synchronized_self_modulated_bn_equal_one_device(
    mirrored, architecture, resolution, z_dim, g_kwargs, d_kwargs):
  one = _build(architecture, resolution, z_dim, "self_modulated", g_kwargs, d_kwargs)
  with mirrored.scope():
    two = _build(architecture, resolution, z_dim, "self_modulated", g_kwargs, d_kwargs,
                 synchronized_bn=True)
  for a, b in zip(one, two):
    b.set_weights(a.get_weights())
  # The halves' z differ in scale, so per-replica statistics would not match.
  z = tf.concat([tf.random.stateless_normal([2, z_dim], seed=[3, 1]),
                 3.0 * tf.random.stateless_normal([2, z_dim], seed=[3, 2])], axis=0)
  generator, discriminator = two
  variables = generator.trainable_variables + discriminator.trainable_variables

  @tf.function  # Eager replicas may issue their BN all-reduces in different orders.
  def step(z):
    with tf.GradientTape() as tape:
      images = generator(z, training=True)
      loss = _loss(discriminator, images, training=True)
    grads = tape.gradient(loss, variables)
    return images, [g is not None for g in grads]

  images, reached = mirrored.run(step, args=(_split(mirrored, z),))
  two_images = np.concatenate([x.numpy() for x in mirrored.experimental_local_results(images)])
  assert all(all(r) for r in mirrored.experimental_local_results(reached))
  one_images = one[0](z, training=True).numpy()
  # Synchronized BN: E[x], E[x^2] summed over replicas, vs E[(x - m)^2] on one device.
  np.testing.assert_allclose(two_images, one_images, rtol=1e-4, atol=1e-5)


# --- Blocks against NumPy --------------------------------------------------------------

def _compare_gan_unpool_numpy(x):
  """compare_gan's unpool (resnet_ops.py:34-55) step by step in NumPy: view as
  [B*H, W, C], concatenate zeros along the channel axis, then along W, reshape."""
  b, h, w, c = x.shape
  out = x.reshape(b * h, w, c)
  out = np.concatenate([out, np.zeros_like(out)], axis=2)
  out = np.concatenate([out, np.zeros_like(out)], axis=1)
  return out.reshape(b, 2 * h, 2 * w, c)


def test_unpool2x_is_compare_gans_zero_insertion():
  x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
  ours = resnet_ops.unpool2x(tf.constant(x)).numpy()
  expected = np.zeros((2, 6, 8, 5), np.float32)
  expected[:, ::2, ::2] = x
  np.testing.assert_array_equal(ours, expected)
  np.testing.assert_array_equal(ours, _compare_gan_unpool_numpy(x))


def test_non_local_block_matches_numpy_and_starts_as_the_identity():
  x = tf.random.stateless_normal([2, 4, 4, 16], seed=[0, 3])
  block = resnet_ops.NonLocalBlock()
  np.testing.assert_array_equal(block(x), x)  # sigma = 0.
  block.sigma.assign(0.7)
  ours = block(x).numpy()
  xn = x.numpy()
  k = lambda layer: layer.kernel.numpy()[0, 0]  # 1x1 kernels as [C_in, C_out].

  def pool_flat(t):  # 2x2 max pool, then [B, HW/4, C].
    t = t.reshape(2, 2, 2, 2, 2, -1).max(axis=(2, 4))
    return t.reshape(2, 4, -1)

  theta = (xn @ k(block.theta)).reshape(2, 16, 2)
  phi = pool_flat(xn @ k(block.phi))
  g = pool_flat(xn @ k(block.g))
  logits = theta @ phi.transpose(0, 2, 1)
  attention = np.exp(logits - logits.max(-1, keepdims=True))
  attention /= attention.sum(-1, keepdims=True)
  attended = (attention @ g).reshape(2, 4, 4, 8)
  np.testing.assert_allclose(ours, xn + 0.7 * (attended @ k(block.attention_out)),
                             rtol=1e-5, atol=1e-5)
  assert _count(block.trainable_weights) == _non_local(16)


def test_biggan_structure_follows_compare_gan():
  generator, discriminator = _build("resnet_biggan", 32, 12, "self_modulated", {"ch": 8},
                                    {"ch": 8})
  # D blocks of equal input and output width have no shortcut and no skip connection.
  assert [b.shortcut is not None for b in discriminator.trunk.blocks] == [True, False, False,
                                                                          False]
  # The final BN of G stays plain (learned gamma, beta) under self-modulation.
  assert isinstance(generator.final_norm, keras.layers.BatchNormalization)
  assert generator.final_norm.scale and generator.final_norm.center
  # Attention defaults "B4" (G) and "B1" (D); at 32 px G has only B1..B3.
  assert resnet_biggan.G_ATTENTION == "B4" and resnet_biggan.D_ATTENTION == "B1"
  assert list(generator.attention) == [None, None, None]
  assert [a is not None for a in discriminator.trunk.attention] == [True, False, False, False]
  # Hierarchical z is on with a normalisation that reads z: 4 chunks of 3.
  assert generator.hierarchical_z
  assert generator.blocks[0].bn1.hidden.kernel.shape == (3, 32)


# --- Errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("architecture, resolution, z_dim, normalization, g_kwargs, match", [
    ("resnet_cifar_compare_gan", 64, 8, "batch_norm", None, "is a 32x32 architecture"),
    ("resnet_stl", 32, 8, "batch_norm", None, "is a 48x48 architecture.* or set "
     "networks.architecture = 'sndcgan'"),
    # sndcgan is not offered where it would fail too (it needs a multiple of 8).
    ("resnet_stl", 36, 8, "batch_norm", None, r"\(an image folder: dataset.resolution=48\)\.\n"),
    ("resnet5", 96, 8, "batch_norm", None, "power-of-two resolution from 4 to 128"),
    ("resnet5", 256, 8, "batch_norm", None, "power-of-two resolution from 4 to 128"),
    ("resnet_biggan", 48, 8, "batch_norm", None, r"supports resolutions \[32, 64"),
    ("resnet_biggan", 32, 8, "batch_norm", {"ch": 8, "hierarchical_z": True},
     "hierarchical_z needs a normalisation that reads z"),
    ("resnet_biggan", 32, 10, "self_modulated", {"ch": 8},
     "splits z into 4 equal chunks; ssgan.z_dim = 10 is not divisible by 4: set it to a "
     "multiple, e.g. 12"),
    ("resnet_biggan", 32, 12, "batch_norm", {"ch": 8, "blocks_with_attention": "B4"},
     r"G blocks_with_attention \['B4'\] not among its blocks"),
    ("resnet5", 32, 8, "batch_norm", {"ch": 2, "channel_multipliers": (8, 4)},
     "channel_multipliers must be 6 positive ints"),
    ("resnet_cifar_compare_gan", 32, 8, "conditional", None, "needs class labels"),
])
def test_bad_settings_raise_one_line_config_errors(architecture, resolution, z_dim,
                                                   normalization, g_kwargs, match):
  with pytest.raises(errors.ConfigError, match=match):
    _build(architecture, resolution, z_dim, normalization, g_kwargs, None)
