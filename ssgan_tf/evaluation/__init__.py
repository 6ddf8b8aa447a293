"""Stage 7: evaluation. Sample-based metrics (FID / IS / KID through TF-GAN's functions,
precision and recall, on Inception or an offline MNIST classifier) and the linear probe
of D's features.

Contract: generators map `z [B, z_dim]` to images `[B, H, H, C]` float32 in [-1, 1];
results are records appended to `<workdir>/metrics.jsonl` and TensorBoard
(`<workdir>/eval`), one per metric, named after their protocol (`fid10k_test`).

Modules, in data-flow order: classifiers (Inception), mnist_classifier (the offline
one), protocols (each dataset's sample counts), activations (streaming, real-image
cache), metrics (TF-GAN's maths, via tfgan) with precision_recall, records, eval_lib
(`evaluate`, `PeriodicEvaluation`), probe.
"""

from ssgan_tf.evaluation.classifiers import Classifier
from ssgan_tf.evaluation.classifiers import InceptionUnavailableError
from ssgan_tf.evaluation.classifiers import load_inception
from ssgan_tf.evaluation.eval_lib import compute_metrics
from ssgan_tf.evaluation.eval_lib import evaluate
from ssgan_tf.evaluation.eval_lib import get_classifier
from ssgan_tf.evaluation.eval_lib import PeriodicEvaluation
from ssgan_tf.evaluation.probe import linear_probe
from ssgan_tf.evaluation.probe import run_probe
