"""Trains the offline metric classifier and writes its weights (how v2's were made).

  python tools/train_mnist_classifier.py --output=mnist_cnn.weights.h5 [--seed=0]

Trains `mnist_classifier.train_network` on the built-in MNIST "train" digits (10-20 s on
a 2-core AMD EPYC with AVX-512) and prints its test accuracy, the SHA-256 of the file and
the CPU. The metric uses the weights shipped in ssgan_tf/evaluation/; a new file changes
the metric, so shipping one means a new `mnist_classifier.VERSION`, WEIGHTS_SHA256 and
TEST_ACCURACY.
Other CPUs or environments train other weights (oneDNN's numerics); even equal weights
give another SHA-256 (the file's HDF5 metadata differs between processes).
It refuses to overwrite an existing file.
"""

import json
import os
import sys

from absl import app
from absl import flags

# Run as a script, the repository root is not on the path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ssgan_tf import cpu_kernels  # noqa: E402

cpu_kernels.prefer_onednn()  # Before TensorFlow loads: the kernels v2 was trained with.
from ssgan_tf import data  # noqa: E402
from ssgan_tf import errors  # noqa: E402
from ssgan_tf import precision  # noqa: E402
from ssgan_tf.evaluation import mnist_classifier  # noqa: E402

flags.DEFINE_string("output", None, "Where to write the weights (a new .weights.h5 file).")
flags.DEFINE_integer("seed", 0, "Initialisation and shuffling seed.")
flags.mark_flag_as_required("output")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  with errors.user_errors_as_one_line():
    if not FLAGS.output.endswith(".weights.h5"):
      raise errors.ConfigError(f"--output must end in .weights.h5; got {FLAGS.output!r}.")
    if os.path.exists(FLAGS.output):
      raise errors.ConfigError(f"{FLAGS.output} exists; choose a new --output.")
  network, info = mnist_classifier.train_network(data.get_source("mnist"), seed=FLAGS.seed)
  network.save_weights(FLAGS.output)
  info.update(weights_sha256=mnist_classifier.file_sha256(FLAGS.output), seed=FLAGS.seed,
              cpu=precision.cpu_info().model_name, cores=os.cpu_count())
  print(json.dumps(info))


if __name__ == "__main__":
  app.run(main)
