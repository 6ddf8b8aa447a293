"""Stage 3: generator and discriminator networks, chosen by architecture name.

`build_networks` is the gin-configurable constructor; each architecture module holds
`check_resolution`, a `Generator` (`z [B, z_dim] -> images [B, H, H, C]` in [-1, 1]) and a
`DiscriminatorTrunk` (images in [-1, 1] -> features; `block_outputs(images)`, the list of
each block's output, for the linear probe), which `Discriminator` wraps with the real/fake
and rotation heads, and the constants `PAPER_RESOLUTION` (what the paper or compare_gan
runs it at) and `TINY_KWARGS` (its smallest widths, for tests and benchmark
--tiny_widths). G's normalisation is chosen by name (`nets/normalization.py`).

Conditional networks (`networks.conditional = True`, the Cond-GAN baseline): G's BNs
become class-conditional BN and D gets a projection head; both then take int labels
`[B]` in 0..num_classes-1 (`G(z, labels=...)`, `D(images, labels=...)`), and carry
`.num_classes` (None for unconditional networks). An architecture module may set
`PROJECTION_INITIALIZER` for D's class embedding (resnet_biggan: compare_gan's Glorot).
Labels are ints at this boundary (what datasets yield and samplers draw); the networks
one-hot encode them, as compare_gan does before its linear maps.
"""

import inspect

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


@gin.configurable("networks", denylist=["image_shape", "synchronized_bn", "z_dim",
                                         "generator_only", "num_classes"])
def build_networks(image_shape, synchronized_bn=False, architecture=gin.REQUIRED,
                   z_dim=128, d_spectral_norm=True, generator_normalization="batch_norm",
                   generator_kwargs=None, discriminator_kwargs=None, generator_only=False,
                   conditional=False, num_classes=None):
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
      for resnet_cifar and resnet_cifar_compare_gan, `{"ch": 64}` for resnet5 and
      resnet_stl (default 64) and resnet_biggan (default 96); see each module.
    generator_only: build G alone (a second G, e.g. for a weight average).
    conditional: the conditional baseline (Cond-GAN): every BN of G that
      "batch_norm" selects becomes class-conditional BN (resnet_biggan's final BN stays
      plain, as compare_gan's), and D adds a projection term `<embed(y), features>` to
      its logit. Needs `generator_normalization = "batch_norm"` and a labelled dataset.
    num_classes: the data's classes (`ImageSource.num_classes`; set by `ssgan`); read
      only when `conditional`.

  Returns:
    `(generator, discriminator)`, built Keras models (discriminator None with
    `generator_only`); each records the name of its architecture as `.architecture`
    (workdirs and exports describe the model by it) and its `.num_classes` (None
    unless conditional).
  """
  module = architecture_module(architecture)
  resolution, width, channels = image_shape
  if resolution != width:
    raise errors.ConfigError(f"images must be square; got {resolution}x{width}.")
  module.check_resolution(resolution)
  normalization, classes = _conditioning(conditional, num_classes, generator_normalization)
  _check_kwargs("networks.generator_kwargs", architecture, module.Generator,
                generator_kwargs, _SET_HERE + ("synchronized_bn", "normalization", "name",
                                               "num_classes"))
  if not generator_only:
    _check_kwargs("networks.discriminator_kwargs", architecture, module.DiscriminatorTrunk,
                  discriminator_kwargs, _SET_HERE + ("spectral_norm",))
  generator = module.Generator(resolution, channels, synchronized_bn=synchronized_bn,
                               normalization=normalization, name="generator",
                               **(generator_kwargs or {}), **classes)
  # Subclassed models create variables on their first call (Model.build does not).
  labels = tf.zeros([1], tf.int32) if conditional else None
  images = generator(tf.zeros([1, z_dim]), **_labels_kwarg(labels))
  generator.architecture = architecture
  if generator_only:
    return generator, None
  trunk = module.DiscriminatorTrunk(spectral_norm=d_spectral_norm,
                                    **(discriminator_kwargs or {}))
  discriminator = Discriminator(
      trunk, spectral_norm=d_spectral_norm, name="discriminator",
      num_classes=num_classes if conditional else None,
      projection_initializer=getattr(module, "PROJECTION_INITIALIZER", None))
  discriminator(images, **_labels_kwarg(labels))
  discriminator.architecture = architecture
  return generator, discriminator


# Arguments of every G and D trunk that build_networks sets itself.
_SET_HERE = ("self", "resolution", "channels")


def _check_kwargs(binding, architecture, cls, kwargs, set_here):
  """A one-line ConfigError for keys of `kwargs` that `cls.__init__` does not take, or
  that build_networks sets from other bindings (`set_here`): else a Keras traceback about
  unrecognized, or a TypeError about repeated, keyword arguments."""
  accepted = [name for name, p in inspect.signature(cls.__init__).parameters.items()
              if name not in set_here and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
  unknown = sorted(set(kwargs or {}) - set(accepted))
  if unknown:
    raise errors.ConfigError(f"{binding} has unknown key(s) {unknown} for {architecture}; "
                             f"it takes {accepted}.")


def _conditioning(conditional, num_classes, generator_normalization):
  """`(G's normalisation, G's extra kwargs)`; ConfigError where labels cannot be used."""
  if not conditional:
    if generator_normalization == "conditional":
      raise errors.ConfigError(
          "networks.generator_normalization 'conditional' needs class labels: set "
          "networks.conditional = True (with a labelled dataset) instead.")
    return generator_normalization, {}
  if num_classes is None:
    raise errors.ConfigError(
        "networks.conditional = True needs class labels, and this dataset has none; use a "
        "labelled one (mnist, cifar10, imagenet*, or a folder whose every image lies in a "
        "class subfolder: images at its top level leave it without classes).")
  errors.check_range("num_classes", num_classes, minimum=1, integer=True)
  if generator_normalization != "batch_norm":
    why = {"self_modulated": "compare_gan's self-modulated BN ignores the labels",
           "none": "a G without BN has nowhere to read them"}.get(generator_normalization,
                                                              "it is not 'batch_norm'")
    raise errors.ConfigError(
        f"networks.conditional = True turns G's BN into class-conditional BN; with "
        f"generator_normalization {generator_normalization!r} {why}. Set it to 'batch_norm'.")
  return "conditional", {"num_classes": num_classes}


def _labels_kwarg(labels):
  """`{"labels": labels}`, or nothing for an unconditional network (its call as before)."""
  return {} if labels is None else {"labels": labels}
