"""Stage 3: generator and discriminator networks, chosen by architecture name.

`build_networks` is the gin-configurable constructor; each architecture module holds
`check_resolution`, a `Generator` (`z [B, z_dim] -> images [B, H, H, C]` in [-1, 1]) and a
`DiscriminatorTrunk` (images in [-1, 1] -> features; `block_outputs(images)`, the list of
each block's output, for the linear probe), which `Discriminator` wraps with the real/fake
and rotation heads. G's normalisation is chosen by name (`nets/normalization.py`).
"""

import gin
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.nets import resnet5
from ssgan_tf.nets import resnet_biggan
from ssgan_tf.nets import resnet_cifar
from ssgan_tf.nets import resnet_cifar_compare_gan
from ssgan_tf.nets import resnet_stl
from ssgan_tf.nets import sndcgan
from ssgan_tf.nets.discriminator import Discriminator

ARCHITECTURES = {
    "sndcgan": sndcgan,
    "resnet_cifar": resnet_cifar,
    "resnet_cifar_compare_gan": resnet_cifar_compare_gan,
    "resnet5": resnet5,
    "resnet_stl": resnet_stl,
    "resnet_biggan": resnet_biggan,
}


def architecture_module(name):
  """The module of architecture `name`; ConfigError naming the choices otherwise."""
  if name not in ARCHITECTURES:
    raise errors.ConfigError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}.")
  return ARCHITECTURES[name]


@gin.configurable("networks",
                  denylist=["image_shape", "synchronized_bn", "z_dim", "generator_only"])
def build_networks(image_shape, synchronized_bn=False, architecture=gin.REQUIRED,
                   z_dim=128, d_spectral_norm=True, generator_normalization="batch_norm",
                   generator_kwargs=None, discriminator_kwargs=None, generator_only=False):
  """Builds (G, D) for `image_shape = (H, H, C)` and runs each once to create variables.

  Args:
    image_shape: `(resolution, resolution, channels)` of the data.
    synchronized_bn: True under several replicas, so G's BN statistics agree across them
      (compare_gan's cross-replica BN).
    architecture: "sndcgan" (any resolution divisible by 8), "resnet_cifar" (SNGAN's, 32),
      "resnet_cifar_compare_gan" (32), "resnet5" (128; powers of two 4..128),
      "resnet_stl" (48) or "resnet_biggan" (32, 64, 128, 256, 512).
    z_dim: length of G's input noise (set by `ssgan.z_dim`).
    d_spectral_norm: spectral norm in every D layer, rotation head included.
    generator_normalization: every BN of G: "batch_norm", "self_modulated" (scale and
      offset from z through an MLP; `generator_kwargs={"sbn_hidden_units": 32}`) or
      "none". resnet_biggan's final BN stays plain (as compare_gan's).
    generator_kwargs / discriminator_kwargs: widths etc. of the architecture, e.g.
      `{"base_channels": 32}` for sndcgan, `{"g_channels": 256}` / `{"d_channels": 128}`
      for resnet_cifar and resnet_cifar_compare_gan, `{"ch": 64}` for resnet5 /
      resnet_stl / resnet_biggan (default 96); see each module.
    generator_only: build G alone (a second G, e.g. for a weight average).

  Returns:
    `(generator, discriminator)`, built Keras models (discriminator None with
    `generator_only`); each records the name of its architecture as `.architecture`
    (workdirs and exports describe the model by it).
  """
  module = architecture_module(architecture)
  resolution, width, channels = image_shape
  if resolution != width:
    raise errors.ConfigError(f"images must be square; got {resolution}x{width}.")
  module.check_resolution(resolution)
  generator = module.Generator(resolution, channels, synchronized_bn=synchronized_bn,
                               normalization=generator_normalization, name="generator",
                               **(generator_kwargs or {}))
  # Subclassed models create variables on their first call (Model.build does not).
  images = generator(tf.zeros([1, z_dim]))
  generator.architecture = architecture
  if generator_only:
    return generator, None
  trunk = module.DiscriminatorTrunk(spectral_norm=d_spectral_norm,
                                    **(discriminator_kwargs or {}))
  discriminator = Discriminator(trunk, spectral_norm=d_spectral_norm, name="discriminator")
  discriminator(images)
  discriminator.architecture = architecture
  return generator, discriminator
