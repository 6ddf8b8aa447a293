"""Exports a workdir's generator as a SavedModel for serving (ssgan_tf/export_lib.py).

  python tools/export.py --workdir=WORKDIR [--checkpoint=STEP] [--include_discriminator] \
      [--overwrite]

Writes WORKDIR/export/<step>/ (signatures serving_default, sample, metadata; with
--include_discriminator also discriminate) and prints that directory.
"""

import os
import sys

from absl import app
from absl import flags

# Run as a script, the repository root is not on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssgan_tf import export_lib  # noqa: E402  pylint: disable=g-import-not-at-top

flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
flags.DEFINE_string("checkpoint", None, "Step or checkpoint path (default: the latest).")
flags.DEFINE_bool("include_discriminator", False,
                  "Also export D as the `discriminate` signature (analysis, linear probe).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export of the same step.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  try:
    export_dir = export_lib.export(FLAGS.workdir, FLAGS.checkpoint,
                                   include_discriminator=FLAGS.include_discriminator,
                                   overwrite=FLAGS.overwrite)
  except ValueError as e:
    sys.exit(f"error: {str(e).strip().splitlines()[0]}")
  print(export_dir)


if __name__ == "__main__":
  app.run(main)
