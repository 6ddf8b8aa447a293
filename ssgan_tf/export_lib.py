"""Stage 8: export a trained generator as a SavedModel for serving.

`export(workdir)` restores a checkpoint (workdir.restore_for_inference) and writes
`workdir/export/<step>/`, where <step> is the checkpoint's generator step; `workdir/export`
is thus a TF Serving model base path (numbered versions). Loading it needs TensorFlow
only (`tf.saved_model.load`, TF Serving, `saved_model_cli`): no Keras, no ssgan_tf.

Signatures (the model's `generate`, and D, in eval mode: BN moving statistics, no
spectral-norm `u` update):
  serving_default  z `[N, z_dim]` float32
                   -> images `[N, H, H, C]` float32 in [-1, 1],
                      images_uint8 `[N, H, H, C]` uint8, round((images + 1) * 127.5)
                      clipped to [0, 255] (rounding half to even, as np.round).
  sample           num_samples int32 scalar, seed int64 scalar
                   -> images, images_uint8 as above, and z `[num_samples, z_dim]`, drawn
                      by the model's `sample_z` with the stateless seed (seed, 0): the same
                      seed gives the same samples on every call and machine, another seed
                      other samples. Feeding that z to serving_default gives the same
                      images. All samples go through G in one batch.
  metadata         no inputs -> the METADATA_FILE fields as scalars (pixel_range
                   `[2]` float32; label_counts `[K]` int64; class_names `[K]` string) plus
                   operative_config (the workdir's gin config).
  discriminate     (include_discriminator=True only) images `[N, H, H, C]` float32 in
                   [-1, 1] -> logits `[N]`, rotation_logits `[N, 4]` (rot90 k = 0..3),
                   features `[N, F]` (what the linear probe reads).
A conditional model's (metadata num_classes = K) signatures differ thus (a signature
cannot have optional inputs, so the labels have a signature of their own):
  serving_default  z -> images, images_uint8, and labels `[N]` int32: each row's class,
                   drawn from the label distribution by a hash of that row of z
                   (labels.labels_from_z; the same z always gives the same class).
  with_labels      z `[N, z_dim]` float32, labels `[N]` int32 in 0..K-1 -> images,
                   images_uint8: G of the given classes.
  sample           as above, its labels those serving_default gives its z.
  discriminate     images and labels `[N]` int32 (D's projection reads them).
  with_labels and discriminate fail (InvalidArgumentError) on a label outside 0..K-1
  ("labels must be in 0..K-1") or a labels vector whose length is not N ("labels must
  have one entry per row of z", or "of images").
Every signature that takes z fails (InvalidArgumentError, "Shape of tensor z [2,65] is not
compatible with expected shape [?,64]") on a z that is not `[N, z_dim]`, and so do images
that are not `[N, H, H, C]` and labels that are not `[N]` (a NumPy array or list of another
shape fails before the call, with TypeError "Binding inputs to tf.function failed").
Beside the SavedModel, in `assets.extra/` (TF Serving's place for files it does not
load), for readers without TensorFlow:
  ssgan_metadata.json   z_dim, z_distribution ("normal": N(0, 1); "uniform": U[-1, 1]),
                        resolution, channels, pixel_range, architecture, step, checkpoint;
                        generator: "ema" when what is served is the EMA of G's weights
                        (ema.py; absent: G itself); conditional models: num_classes;
                        class_names, label i's name, where the data names its classes
                        (a folder's subfolders, TFDS' label names, MNIST's digits); and,
                        if the fakes' labels follow the training frequencies,
                        label_counts (absent: uniform)
  operative_config.gin  the gin config the model was trained with.

An export is written to a temporary directory beside its target and renamed into place
(files.atomic_output), so a reader (or TF Serving polling the base path) never sees a
partial export, and a failed export leaves nothing behind. An existing export is replaced
only when asked.
"""

import json
import os

from absl import logging
import gin
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf import files
from ssgan_tf import labels as labels_lib
from ssgan_tf import ssgan
from ssgan_tf import workdir as workdir_lib
from ssgan_tf.errors import ExportError

METADATA_FILE = "ssgan_metadata.json"
CONFIG_FILE = workdir_lib.OPERATIVE_CONFIG
EXTRA_DIR = "assets.extra"
PIXEL_RANGE = (-1.0, 1.0)


# What `export` adds to the model's `info` in its metadata.
_EXPORT_FIELDS = ("resolution", "channels", "pixel_range", "step", "checkpoint", "generator",
                  workdir_lib.CLASS_NAMES)


def export(workdir, checkpoint=None, include_discriminator=False, overwrite=False):
  """Exports the generator of a workdir's checkpoint (the EMA of G's weights when the
  model keeps one, as `SSGAN.generate`; it logs which); returns the export directory.

  Args:
    workdir: a training workdir (local path or any tf.io.gfile URL).
    checkpoint: None (the latest), a step number (int or str), or a checkpoint path.
    include_discriminator: also export D as the `discriminate` signature.
    overwrite: replace an existing `workdir/export/<step>` (else ExportError).

  Returns:
    `workdir/export/<step>`.

  Raises:
    WorkdirError: no such checkpoint; ExportError: the export exists.
  """
  restored = workdir_lib.restore_for_inference(workdir, checkpoint)
  export_dir = os.path.join(workdir, workdir_lib.EXPORT, str(restored.step))
  exists = (f"export {export_dir!r} already exists; delete it, or pass overwrite=True "
            "(--overwrite) to replace it.")
  if tf.io.gfile.exists(export_dir) and not overwrite:
    raise ExportError(exists)
  model = restored.model
  metadata = {
      **model.info,
      "resolution": restored.image_shape[0], "channels": restored.image_shape[2],
      "pixel_range": list(PIXEL_RANGE),
      "step": restored.step, "checkpoint": restored.checkpoint_path,
  }
  if model.generator_kind == "ema":
    # Only then: exports of models without an EMA keep their metadata as it was.
    metadata["generator"] = "ema"
  if restored.class_names:
    metadata[workdir_lib.CLASS_NAMES] = restored.class_names
  with tf.io.gfile.GFile(restored.config_path) as f:
    operative_config = f.read()
  module, signatures = build_module(model, metadata, operative_config, include_discriminator)
  logging.info("exporting step %d to %s: it serves %s", restored.step, export_dir,
               "the EMA of G's weights (ssgan.ema_decay), as grids and evaluation sample"
               if model.generator_kind == "ema" else "G's own weights (the model keeps no EMA)")
  try:
    # Without overwrite, an export another process wrote meanwhile is kept, not replaced.
    with files.atomic_output(export_dir, overwrite=overwrite) as tmp_dir:
      tf.saved_model.save(module, tmp_dir, signatures=signatures)
      extra = os.path.join(tmp_dir, EXTRA_DIR)
      tf.io.gfile.makedirs(extra)
      for name, text in ((METADATA_FILE, json.dumps(metadata, indent=2)),
                         (CONFIG_FILE, operative_config)):
        with tf.io.gfile.GFile(os.path.join(extra, name), "w") as f:
          f.write(text)
  except files.OutputExistsError as e:
    raise ExportError(exists) from e
  # A read-only workdir, a full disk: the user's to fix (atomic_output left nothing).
  except (tf.errors.PermissionDeniedError, tf.errors.ResourceExhaustedError, OSError) as e:
    raise ExportError(f"cannot write the export {export_dir!r} ({errors.first_line(e)}); "
                      "nothing was left there. Make the workdir writable or free space, "
                      "then export again.") from e
  return export_dir


def build_module(model, metadata, operative_config, include_discriminator=False):
  """A `tf.Module` holding the signatures of the module docstring, and those signatures.

  Args:
    model: the `ssgan.SSGAN` to serve: its `generate` (z `[N, z_dim]` -> `[N, H, H, C]`
      in [-1, 1]), `sample_z`, and with `include_discriminator` its D.
    metadata: the METADATA_FILE dict (z_dim, z_distribution, resolution, channels,
      pixel_range, ...).
    operative_config: gin config text.
    include_discriminator: also serve D as `discriminate`.

  Returns:
    `(module, {signature name: tf.function})`, for `tf.saved_model.save`.
  """
  z_dim, resolution, channels = metadata["z_dim"], metadata["resolution"], metadata["channels"]
  conditional = getattr(model, "num_classes", None) is not None
  module = tf.Module()
  # Only the tf.Variables behind the Keras variables are saved. (Keras' ExportArchive
  # saves both kinds, which doubles the size of an export.)
  module.generator_variables = [v.value for v in model.sampling_generator.variables]
  z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")
  labels_spec = tf.TensorSpec([None], tf.int32, name="labels")

  def images_of(z, labels=None):
    images = model.generate(z) if labels is None else model.generate(z, labels)
    return {"images": images, "images_uint8": to_uint8(images)}

  if conditional:
    @tf.function(input_signature=[z_spec])
    def serving_default(z):
      z = checked_z(z, z_dim)
      labels = labels_lib.labels_from_z(z, model.num_classes, model.label_probabilities)
      return {**images_of(z, labels), "labels": labels}

    @tf.function(input_signature=[z_spec, labels_spec])
    def with_labels(z, labels):
      z = checked_z(z, z_dim)
      return images_of(z, checked_labels(labels, z, "z", model.num_classes))
  else:
    @tf.function(input_signature=[z_spec])
    def serving_default(z):
      return images_of(checked_z(z, z_dim))

  @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="num_samples"),
                                tf.TensorSpec([], tf.int64, name="seed")])
  def sample(num_samples, seed):
    z = model.sample_z(num_samples, seed=tf.stack([seed, tf.constant(0, tf.int64)]))
    return {**serving_default(z), "z": z}

  constants = {**metadata, "operative_config": operative_config}

  @tf.function(input_signature=[])
  def metadata_signature():
    return {key: tf.constant(value, tf.int64 if _all_ints(value) else None)
            for key, value in constants.items()}

  signatures = {"serving_default": serving_default, "sample": sample,
                "metadata": metadata_signature}
  if conditional:
    signatures["with_labels"] = with_labels
  if include_discriminator:
    discriminator = model.discriminator
    module.discriminator_variables = [v.value for v in discriminator.variables]
    images_spec = tf.TensorSpec([None, resolution, resolution, channels], tf.float32,
                                name="images")
    if conditional:
      @tf.function(input_signature=[images_spec, labels_spec])
      def discriminate(images, labels):
        images = checked_images(images, images_spec.shape)
        labels = checked_labels(labels, images, "images", model.num_classes)
        return discriminator(images, labels=labels, training=False)
    else:
      @tf.function(input_signature=[images_spec])
      def discriminate(images):
        return discriminator(checked_images(images, images_spec.shape), training=False)

    signatures["discriminate"] = discriminate
  for name, function in signatures.items():
    setattr(module, name, function)  # Also callable as attributes of the loaded model.
  return module, signatures


def checked_z(z, z_dim):
  """`z` once it is `[N, z_dim]`; else the signature fails with InvalidArgumentError
  ("Shape of tensor z [2,65] is not compatible with expected shape [?,64]"). A loaded
  SavedModel does not enforce its input spec: without this, a wrong shape fails deep in
  G, as a matmul of other sizes."""
  return tf.ensure_shape(z, [None, z_dim])


def checked_images(images, shape):
  """`images` once they are `shape` (`[None, H, H, C]`); else InvalidArgumentError ("Shape
  of tensor images [2,64,64,1] is not compatible with expected shape [?,32,32,1]").
  Without it, D's global pooling took any size (ResNets: meaningless logits and features)
  and oneDNN's convolution aborted the process on images of rank 3."""
  return tf.ensure_shape(images, shape)


def checked_labels(labels, rows, rows_name, num_classes):
  """`labels` `[N]` int32, once each is in 0..num_classes-1 and there is one per row of
  `rows` (`[N, ...]`, named `rows_name` in the message); else the signature fails with
  InvalidArgumentError. Without the check, tf.one_hot would turn a label out of range into
  no class at all and G (or D's projection) would answer as if it were valid, and one
  label would broadcast over a batch."""
  labels = tf.ensure_shape(labels, [None])  # Else a scalar or `[N, 1]` fails deep in D or G.
  last = num_classes - 1
  checks = [
      tf.debugging.assert_non_negative(labels, message=f"labels must be in 0..{last}"),
      tf.debugging.assert_less(labels, num_classes, message=f"labels must be in 0..{last}"),
      tf.debugging.assert_equal(tf.shape(labels)[0], tf.shape(rows)[0],
                                message=f"labels must have one entry per row of {rows_name}"),
  ]
  with tf.control_dependencies(checks):
    return tf.identity(labels)


def _all_ints(value):
  """An int, or a non-empty list of ints (label_counts): int64 in the metadata signature."""
  values = value if isinstance(value, list) and value else [value]
  return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def to_uint8(images):
  """float images in [-1, 1] -> uint8 round((x + 1) * 127.5), clipped to [0, 255]."""
  return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def _export_hint(path):
  """What to pass instead of `path`, which holds no SavedModel: one of the exports in it
  (a workdir's export/ folder) or in its export/ folder (a workdir), or how to make one."""
  for folder, holder in ((path, "it holds"),
                         (os.path.join(path, workdir_lib.EXPORT),
                          f"its {workdir_lib.EXPORT}/ folder holds")):
    try:
      steps = sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(folder)
                     if name.rstrip("/").isdigit() and tf.io.gfile.exists(
                         os.path.join(folder, name.rstrip("/"), "saved_model.pb")))
    except tf.errors.NotFoundError:
      steps = []
    if steps:
      return (f"{holder} the exports of steps {steps}: pass one, e.g. "
              f"--export_dir={os.path.join(folder, str(steps[-1]))}")
  return "export one first: python -m ssgan_tf.main --mode=export --workdir=WORKDIR"


class ExportedGenerator:
  """A loaded export as evaluation sees a model (`generate`, `sample_z`; conditional:
  `num_classes`), so that the number a user reports belongs to the artefact they ship.

  Images come from the export's `serving_default` signature (`with_labels` when labels are
  given); noise is drawn with the export's recorded z distribution by the same
  `ssgan.draw_z` as training's (and evaluation draws the labels), so an export and its
  checkpoint evaluated with one seed see the same z and labels and give the same metrics
  (up to float round-off).
  """

  def __init__(self, export_dir):
    if not tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
      raise ExportError(f"no SavedModel in {export_dir!r}; {_export_hint(export_dir)}")
    with tf.io.gfile.GFile(os.path.join(export_dir, EXTRA_DIR, METADATA_FILE)) as f:
      self.metadata = json.load(f)
    self.z_dim, self.z_distribution = self.metadata["z_dim"], self.metadata["z_distribution"]
    # Exports of unconditional models (and those from before labels) have no num_classes.
    self.num_classes = self.metadata.get("num_classes")
    # What it serves, as `SSGAN.generator_kind`: evaluation names its metrics by it.
    self.generator_kind = self.metadata.get("generator", "raw")
    # The model's description, as `SSGAN.info` (workdir.model_info): what `export` added
    # to it removed.
    self.info = {k: v for k, v in self.metadata.items() if k not in _EXPORT_FIELDS}
    # The loaded object owns the variables: the signature alone would outlive them.
    self._loaded = tf.saved_model.load(export_dir)
    self._serve = self._loaded.signatures["serving_default"]

  def generate(self, z, labels=None):
    if labels is None:
      return self._serve(z=z)["images"]
    if self.num_classes is None:
      raise ValueError("this export is unconditional; it takes no labels.")
    return self._loaded.signatures["with_labels"](
        z=z, labels=tf.cast(labels, tf.int32))["images"]

  def sample_z(self, num, rng):
    return ssgan.draw_z([num, self.z_dim], self.z_distribution, rng)


def load_for_evaluation(export_dir):
  """An export as a `workdir.Restored` for evaluation (`eval_lib.evaluate`).

  Like `workdir.restore_for_inference`, it parses the model's operative config (here the
  export's copy) into gin, so that the data source it was trained on can be built.
  """
  exported = ExportedGenerator(export_dir)
  config_path = os.path.join(export_dir, EXTRA_DIR, CONFIG_FILE)
  with tf.io.gfile.GFile(config_path) as f:
    gin.parse_config(f.read(), skip_unknown=True)
  metadata = exported.metadata
  image_shape = (metadata["resolution"], metadata["resolution"], metadata["channels"])
  return workdir_lib.Restored(exported, metadata["step"], export_dir, image_shape, config_path)
