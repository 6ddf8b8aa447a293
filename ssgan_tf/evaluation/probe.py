"""The linear probe of SS-GAN: how linearly separable D's frozen features make the classes.

As in the paper's representation experiments: a multinomial logistic regression is fit
on the frozen features of labelled training images, D in eval mode, once per block of D
(each block's output averaged over space, `Discriminator.probe_features`) and once on
the final features the heads read; the best test top-1 accuracy is reported with the
block that reached it. Features are standardised first (scikit-learn's lbfgs converges
badly on raw activations). The built-in "mnist" (4,500 / 500 digits) works offline;
CIFAR-10 comes through TFDS (data.py). `--mode=probe` runs it (gin: `probe.*`).

Memory: features are held in RAM, `num_train x sum(F)` float32; SNDCGAN's final F is
8192 at 32x32 (1.5 GB for all 50k CIFAR-10 training images), so `num_train` caps it.
"""

from absl import logging
import gin
import numpy as np
from sklearn import linear_model
from sklearn import pipeline
from sklearn import preprocessing
import tensorflow as tf

from ssgan_tf import data
from ssgan_tf import errors
from ssgan_tf.evaluation import records as records_lib

# Every probe record's metric name starts so ("probe_top1_test"); study reports key on it.
METRIC_PREFIX = "probe_"


def discriminator_features(discriminator, labelled_images, num=None, batch_size=256):
  """D's probe features of the first `num` (image, label) pairs of a dataset.

  Args:
    discriminator: SS-GAN's D (nets/discriminator.py: `probe_features`).
    labelled_images: unbatched `tf.data.Dataset` of (image `[H, H, C]` in [-1, 1],
      int label).
    num: examples to take; None = all.
    batch_size: images per D call.

  Returns:
    `({name: [n, F_name] float32}, labels [n] int64)` NumPy arrays, one entry per block
    ("block1", ...) and "features".
  """
  featurize = tf.function(discriminator.probe_features)
  dataset = labelled_images if num is None else labelled_images.take(num)
  features, labels = {}, []
  for images, batch_labels in data.prefetched(dataset.batch(batch_size)):
    for name, values in featurize(images).items():
      features.setdefault(name, []).append(values.numpy())
    labels.append(batch_labels.numpy())
  if not labels:
    raise errors.DataError("the labelled split is empty; check the dataset and split names.")
  return ({name: np.concatenate(parts) for name, parts in features.items()},
          np.concatenate(labels).astype(np.int64))


def fit_probe(train_features, train_labels, test_features, test_labels, *,
              inverse_l2=1.0, max_iter=1000):
  """Top-1 test accuracy in [0, 1] of a logistic regression fit on the training features.

  Args:
    train_features / test_features: `[n, F]` arrays; train_labels / test_labels: `[n]`.
    inverse_l2: scikit-learn's `C`, the inverse L2 regularisation strength.
    max_iter: lbfgs iterations.
  """
  if len(np.unique(train_labels)) < 2:
    raise errors.DataError("the probe needs training examples of at least two classes.")
  model = pipeline.make_pipeline(
      preprocessing.StandardScaler(),
      linear_model.LogisticRegression(C=inverse_l2, max_iter=max_iter))
  model.fit(train_features, train_labels)
  return float(model.score(test_features, test_labels))


@gin.configurable("probe", denylist=["discriminator", "source"])
def linear_probe(discriminator, source, *, train_split="train", test_split="test",
                 num_train=None, num_test=None, batch_size=256, inverse_l2=1.0,
                 max_iter=1000):
  """Probes each block of `discriminator` on `source`'s labelled splits (gin: `probe.*`).

  Args:
    discriminator: SS-GAN's D (nets/discriminator.py).
    source: a labelled `data.ImageSource` (`images(split, with_labels=True)`).
    train_split, test_split: splits to fit and to score on.
    num_train, num_test: examples taken from each split; None = all.
    Others: see `discriminator_features` and `fit_probe`.

  Returns:
    `{"top1": the best accuracy in [0, 1], "block": where it was reached, "per_block":
    {name: accuracy}, "num_train": n, "num_test": m, "test_split": test_split}`; the
    paper reports the best block.
  """
  train, train_labels = discriminator_features(
      discriminator, source.images(train_split, with_labels=True), num_train, batch_size)
  if len(np.unique(train_labels)) < 2:
    taken = (f"the first {len(train_labels)} of split {train_split!r} of {source.name} are"
             if num_train is not None else f"split {train_split!r} of {source.name} is")
    fix = ("raise probe.num_train (None: all; a folder lists its images class by class)"
           if num_train is not None else "probe it on data with labels of several classes")
    raise errors.DataError(
        f"the probe needs training examples of at least two classes; {taken} all of class "
        f"{int(train_labels[0]) if len(train_labels) else None}: {fix}.")
  test, test_labels = discriminator_features(
      discriminator, source.images(test_split, with_labels=True), num_test, batch_size)
  per_block = {name: fit_probe(train[name], train_labels, test[name], test_labels,
                               inverse_l2=inverse_l2, max_iter=max_iter)
               for name in train}
  best = max(per_block, key=per_block.get)
  return {"top1": per_block[best], "block": best, "per_block": per_block,
          "num_train": len(train_labels), "num_test": len(test_labels),
          "test_split": test_split}


def run_probe(workdir, restored, **probe_kwargs):
  """Probes restored weights and appends the record `probe_top1_<test split>`.

  Args:
    workdir: the run's directory (records.py).
    restored: `workdir.restore_for_inference(...)`'s result.
    **probe_kwargs: override the gin bindings `probe.*` of `linear_probe`.

  Returns:
    The record written (records.RECORD_KEYS + block, per_block, num_train).

  Raises:
    errors.WorkdirError: `workdir`'s metrics.jsonl cannot be appended to (checked before
      the probe; if it fails only when writing, the result is logged first).
  """
  records_lib.check_appendable(workdir, "no probe was run")
  result = linear_probe(restored.model.discriminator, restored.source, **probe_kwargs)
  record = {"step": int(restored.step), "checkpoint": restored.checkpoint_path,
            "metric": f"{METRIC_PREFIX}top1_{result['test_split']}", "value": result["top1"],
            "num_real": result["num_test"], "num_fake": 0,
            "classifier": "logistic_regression(discriminator_block_features)",
            "block": result["block"], "per_block": result["per_block"],
            "num_train": result["num_train"]}
  logging.info("step %d: %s = %.5g (%d test images)", record["step"], record["metric"],
               record["value"], record["num_real"])
  try:
    records_lib.append_records(workdir, [record])
  except (tf.errors.OpError, OSError) as e:
    raise records_lib.unwritable(workdir, e, "the result is in the log line above") from e
  return record
