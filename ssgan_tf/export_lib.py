"""Stage 8: export a trained generator as a SavedModel for serving.

`export(workdir)` restores a checkpoint (train_lib.restore_for_inference) and writes
`workdir/export/<step>/`, where <step> is the checkpoint's generator step; `workdir/export`
is thus a TF Serving model base path (numbered versions). Loading it needs TensorFlow
only (`tf.saved_model.load`, TF Serving, `saved_model_cli`): no Keras, no ssgan_tf.

Signatures (G and D in eval mode: BN moving statistics, no spectral-norm `u` update):
  serving_default  z `[N, z_dim]` float32
                   -> images `[N, H, H, C]` float32 in [-1, 1],
                      images_uint8 `[N, H, H, C]` uint8, round((images + 1) * 127.5)
                      clipped to [0, 255] (rounding half to even, as np.round).
  sample           num_samples int32 scalar, seed int64 scalar
                   -> images, images_uint8 as above, and z `[num_samples, z_dim]`, drawn
                      from the model's noise distribution with stateless RNG: the same
                      seed gives the same samples on every call and machine, another seed
                      other samples. Feeding that z to serving_default gives the same
                      images. All samples go through G in one batch.
  metadata         no inputs -> the METADATA_FILE fields as scalars (pixel_range
                   `[2]` float32) plus operative_config (the workdir's gin config).
  discriminate     (include_discriminator=True only) images `[N, H, H, C]` float32 in
                   [-1, 1] -> logits `[N]`, rotation_logits `[N, 4]` (rot90 k = 0..3),
                   features `[N, F]` (what the linear probe reads).
Beside the SavedModel, in `assets.extra/` (TF Serving's place for files it does not
load), for readers without TensorFlow:
  ssgan_metadata.json   z_dim, z_distribution ("normal": N(0, 1); "uniform": U[-1, 1]),
                        resolution, channels, pixel_range, architecture, step, checkpoint
  operative_config.gin  the gin config the model was trained with.

An export is written to a temporary directory beside its target and renamed into place,
so a reader (or TF Serving polling the base path) never sees a partial export, and a
failed export leaves nothing behind. An existing export is replaced only when asked.
"""

import json
import os
import uuid

import gin
import tensorflow as tf

from ssgan_tf import train_lib

METADATA_FILE = "ssgan_metadata.json"
CONFIG_FILE = "operative_config.gin"
EXTRA_DIR = "assets.extra"
PIXEL_RANGE = (-1.0, 1.0)


class ExportError(ValueError):
  """The export cannot be written as asked (e.g. it exists already)."""


def export(workdir, checkpoint=None, include_discriminator=False, overwrite=False):
  """Exports the generator of a workdir's checkpoint; returns the export directory.

  Args:
    workdir: a training workdir (local path or any tf.io.gfile URL).
    checkpoint: None (the latest), a step number (int or str), or a checkpoint path.
    include_discriminator: also export D as the `discriminate` signature.
    overwrite: replace an existing `workdir/export/<step>` (else ExportError).

  Returns:
    `workdir/export/<step>`.

  Raises:
    train_lib.WorkdirError: no such checkpoint; ExportError: the export exists.
  """
  restored = train_lib.restore_for_inference(workdir, checkpoint)
  export_dir = os.path.join(workdir, "export", str(restored.step))
  if tf.io.gfile.exists(export_dir) and not overwrite:
    raise ExportError(f"export {export_dir!r} already exists; delete it, or pass "
                      "overwrite=True (tools/export.py --overwrite) to replace it.")
  model = restored.model
  metadata = {
      "z_dim": model.z_dim, "z_distribution": model.z_distribution,
      "resolution": restored.image_shape[0], "channels": restored.image_shape[2],
      "pixel_range": list(PIXEL_RANGE),
      "architecture": gin.query_parameter("networks.architecture"),
      "step": restored.step, "checkpoint": restored.checkpoint_path,
  }
  with tf.io.gfile.GFile(os.path.join(workdir, CONFIG_FILE)) as f:
    operative_config = f.read()
  module, signatures = build_module(model.generator, metadata, operative_config,
                                    model.discriminator if include_discriminator else None)
  _write_atomically(module, signatures, metadata, operative_config, export_dir, overwrite)
  return export_dir


def build_module(generator, metadata, operative_config, discriminator=None):
  """A `tf.Module` holding the signatures of the module docstring, and those signatures.

  Args:
    generator: the network to serve, `z [N, z_dim] -> [N, H, H, C]` in [-1, 1].
    metadata: the METADATA_FILE dict (z_dim, z_distribution, resolution, channels,
      pixel_range, ...).
    operative_config: gin config text.
    discriminator: None, or D (images -> dict of logits, rotation_logits, features).

  Returns:
    `(module, {signature name: tf.function})`, for `tf.saved_model.save`.
  """
  z_dim, distribution = metadata["z_dim"], metadata["z_distribution"]
  resolution, channels = metadata["resolution"], metadata["channels"]
  module = tf.Module()
  # Only the tf.Variables behind the Keras variables are saved. (Keras' ExportArchive
  # saves both kinds, which doubles the size of an export.)
  module.generator_variables = [v.value for v in generator.variables]

  @tf.function(input_signature=[tf.TensorSpec([None, z_dim], tf.float32, name="z")])
  def serving_default(z):
    images = generator(z, training=False)
    return {"images": images, "images_uint8": to_uint8(images)}

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                tf.TensorSpec([], tf.int64, name="seed")])
  def sample(num_samples, seed):
    z = stateless_z([num_samples, z_dim], distribution,
                    tf.stack([seed, tf.constant(0, tf.int64)]))
    return {**serving_default(z), "z": z}

  constants = {**metadata, "operative_config": operative_config}

  @tf.function(input_signature=[])
  def metadata_signature():
    return {key: tf.constant(value, tf.int64 if isinstance(value, int) else None)
            for key, value in constants.items()}

  signatures = {"serving_default": serving_default, "sample": sample,
                "metadata": metadata_signature}
  if discriminator is not None:
    module.discriminator_variables = [v.value for v in discriminator.variables]

    @tf.function(input_signature=[tf.TensorSpec([None, resolution, resolution, channels],
                                                tf.float32, name="images")])
    def discriminate(images):
      return discriminator(images, training=False)

    signatures["discriminate"] = discriminate
  for name, function in signatures.items():
    setattr(module, name, function)  # Also callable as attributes of the loaded model.
  return module, signatures


def to_uint8(images):
  """float images in [-1, 1] -> uint8 round((x + 1) * 127.5), clipped to [0, 255]."""
  return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def stateless_z(shape, distribution, seed):
  """Noise of `shape` from "normal" (N(0, 1)) or "uniform" (U[-1, 1]); `seed` `[2]` int."""
  if distribution == "uniform":
    return tf.random.stateless_uniform(shape, seed, -1.0, 1.0)
  if distribution == "normal":
    return tf.random.stateless_normal(shape, seed)
  raise ValueError(f"unknown z distribution {distribution!r}; choose 'normal' or 'uniform'.")


def _write_atomically(module, signatures, metadata, operative_config, export_dir, overwrite):
  """Writes the SavedModel and assets.extra/ to a temporary sibling of `export_dir`, then
  renames it into place. Temporary names are not numbers, so TF Serving ignores them."""
  parent = os.path.dirname(export_dir)
  tmp_dir = os.path.join(parent, f".tmp-{os.path.basename(export_dir)}-{uuid.uuid4().hex}")
  old_dir = tmp_dir + "-replaced"
  tf.io.gfile.makedirs(parent)
  try:
    tf.saved_model.save(module, tmp_dir, signatures=signatures)
    extra = os.path.join(tmp_dir, EXTRA_DIR)
    tf.io.gfile.makedirs(extra)
    with tf.io.gfile.GFile(os.path.join(extra, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2)
    with tf.io.gfile.GFile(os.path.join(extra, CONFIG_FILE), "w") as f:
      f.write(operative_config)
    if overwrite and tf.io.gfile.exists(export_dir):
      tf.io.gfile.rename(export_dir, old_dir)
    tf.io.gfile.rename(tmp_dir, export_dir)
  except BaseException:
    if tf.io.gfile.exists(old_dir) and not tf.io.gfile.exists(export_dir):
      tf.io.gfile.rename(old_dir, export_dir)
    if tf.io.gfile.exists(tmp_dir):
      tf.io.gfile.rmtree(tmp_dir)
    raise
  if tf.io.gfile.exists(old_dir):
    tf.io.gfile.rmtree(old_dir)
