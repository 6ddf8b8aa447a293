"""Linear probe of a trained discriminator: top-1 of a logistic regression on D's features.

  python tools/probe.py --workdir=WORKDIR [--checkpoint=STEP] [--num_train=10000]

Restores the workdir's checkpoint (the latest by default), fits the probe on the
training split of the dataset it was trained on and scores the test split
(ssgan_tf/evaluation/probe.py); appends the record `probe_top1_test` to
WORKDIR/metrics.jsonl and prints it as one JSON line.
"""

import json
import os
import sys

from absl import app
from absl import flags

# Run as a script, the repository root is not on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssgan_tf import errors  # noqa: E402  pylint: disable=g-import-not-at-top
from ssgan_tf import workdir  # noqa: E402  pylint: disable=g-import-not-at-top
from ssgan_tf.evaluation import probe  # noqa: E402  pylint: disable=g-import-not-at-top

flags.DEFINE_string("workdir", None, "Training workdir holding checkpoints/.")
flags.DEFINE_string("checkpoint", None, "Step or checkpoint path (default: the latest).")
flags.DEFINE_string("train_split", "train", "Split the probe is fit on.")
flags.DEFINE_string("test_split", "test", "Split the probe is scored on.")
flags.DEFINE_integer("num_train", None, "Training examples used (default: all; D's "
                     "features are held in memory, num_train x F float32).")
flags.DEFINE_integer("num_test", None, "Test examples used (default: all).")
flags.DEFINE_integer("batch_size", 256, "Images per discriminator call.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  with errors.user_errors_as_one_line():
    restored = workdir.restore_for_inference(FLAGS.workdir, FLAGS.checkpoint)
    record = probe.run_probe(FLAGS.workdir, restored, train_split=FLAGS.train_split,
                             test_split=FLAGS.test_split, num_train=FLAGS.num_train,
                             num_test=FLAGS.num_test, batch_size=FLAGS.batch_size)
  print(json.dumps(record))


if __name__ == "__main__":
  app.run(main)
