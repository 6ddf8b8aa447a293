r"""Draws samples from an exported generator: a PNG grid, or arrays (.npy, .npz).

  python tools/sample.py --export_dir=WORKDIR/export/STEP --output=grid.png \
      [--num_samples=64] [--seed=0] [--overwrite]

Calls the export's `sample` signature (ssgan_tf/export_lib.py), so a seed always gives the
same images. Needs only TensorFlow's SavedModel loader and NumPy, as any serving client:
it imports neither Keras nor ssgan_tf.
  --output=*.png  one uint8 grid, ceil(sqrt(N)) images per row, filled row by row, the
                  last row padded with black.
  --output=*.npy  float32 `[N, H, H, C]` in [-1, 1].
  --output=*.npz  arrays `images` (as .npy), `z` `[N, z_dim]` (the noise of each image)
                  and, from a conditional export, `labels` `[N]` int32 (each one's class).
An existing --output is replaced only with --overwrite.
"""

import io
import math
import os
import sys

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

flags.DEFINE_string("export_dir", None, "An export: WORKDIR/export/<step>.")
flags.DEFINE_string("output", None,
                    "Where to write: a .png grid, a .npy of images, or a .npz of images, "
                    "z and (conditional exports) labels.")
flags.DEFINE_integer("num_samples", 64, "Images to draw (all in one generator batch).",
                     lower_bound=1, upper_bound=2**31 - 1)  # The signature's int32.
flags.DEFINE_integer("seed", 0, "Noise seed: the same seed draws the same images.",
                     lower_bound=-2**63, upper_bound=2**63 - 1)  # The signature's int64.
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.mark_flags_as_required(["export_dir", "output"])
FLAGS = flags.FLAGS


class SampleError(ValueError):
  """Bad input to this tool: printed as one line. A ValueError raised inside TensorFlow
  is not one of these, and keeps its traceback."""


def grid(images):
  """uint8 `[N, H, W, C]` -> one uint8 `[rows * H, cols * W, C]` image."""
  n, h, w, c = images.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  padded = np.zeros((rows * cols, h, w, c), np.uint8)
  padded[:n] = images
  return padded.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(
      rows * h, cols * w, c)


def write_samples(export_dir, output, num_samples, seed, overwrite=False):
  """Writes `num_samples` samples of `seed` from `export_dir` to `output` (.png/.npy/.npz),
  replacing an existing `output` only if `overwrite`; SampleError on bad input."""
  if not output.endswith((".png", ".npy", ".npz")):
    raise SampleError(f"--output must end in .png, .npy or .npz; got {output!r}.")
  if tf.io.gfile.exists(output) and not overwrite:
    raise SampleError(f"{output} exists; pass --overwrite to replace it, or choose another "
                     "--output.")
  if num_samples < 1:
    raise SampleError(f"--num_samples must be >= 1; got {num_samples}.")
  if not tf.io.gfile.exists(os.path.join(export_dir, "saved_model.pb")):
    # As ssgan_tf.export_lib's hint (not imported: this tool needs only TF and NumPy).
    hint = "export one first: python -m ssgan_tf.main --mode=export --workdir=WORKDIR"
    for folder, holder in ((export_dir, "it holds"),
                           (os.path.join(export_dir, "export"), "its export/ folder holds")):
      names = ([name.rstrip("/") for name in tf.io.gfile.listdir(folder)]
               if tf.io.gfile.isdir(folder) else [])
      steps = sorted(int(name) for name in names if name.isdigit() and tf.io.gfile.exists(
          os.path.join(folder, name, "saved_model.pb")))
      if steps:
        hint = (f"{holder} the exports of steps {steps}: pass one, e.g. "
                f"--export_dir={os.path.join(folder, str(steps[-1]))}")
        break
    raise SampleError(f"no SavedModel in {export_dir!r}; {hint}")
  signatures = tf.saved_model.load(export_dir).signatures
  if "sample" not in signatures:
    raise SampleError(f"{export_dir!r} has no `sample` signature (only {list(signatures)}); "
                     "export it with python -m ssgan_tf.main --mode=export.")
  sample = signatures["sample"]
  if os.path.dirname(output):
    tf.io.gfile.makedirs(os.path.dirname(output))
  out = sample(num_samples=tf.constant(num_samples, tf.int32),
               seed=tf.constant(seed, tf.int64))
  if output.endswith(".png"):
    tf.io.write_file(output, tf.io.encode_png(grid(out["images_uint8"].numpy())))
  elif output.endswith(".npy"):
    with tf.io.gfile.GFile(output, "wb") as f:
      np.save(f, out["images"].numpy())
  else:
    arrays = io.BytesIO()  # A zip file: written whole, as tf.io.gfile cannot seek back.
    np.savez(arrays, **{key: out[key].numpy() for key in ("images", "z", "labels") if key in out})
    tf.io.write_file(output, arrays.getvalue())


def main(argv):
  del argv
  try:
    write_samples(FLAGS.export_dir, FLAGS.output, FLAGS.num_samples, FLAGS.seed,
                  FLAGS.overwrite)
  except SampleError as e:
    sys.exit(f"error: {str(e).strip().splitlines()[0]}")
  print(FLAGS.output)


if __name__ == "__main__":
  app.run(main)
