"""The linear probe of SS-GAN: how linearly separable D's frozen features make the classes.

As in the paper's representation experiments: a multinomial logistic regression is fit
on `discriminator(images)["features"]` of labelled training images (D frozen, eval
mode) and its top-1 accuracy on the test split is reported. Features are standardised
first (scikit-learn's lbfgs converges badly on raw activations). The built-in "mnist"
(4,500 / 500 digits) works offline; CIFAR-10 comes through TFDS (data.py).

Memory: features are held in RAM, `num_train x F` float32; SNDCGAN's F is 8192 at 32x32
(1.5 GB for all 50k CIFAR-10 training images), so `num_train` caps it.
"""

import numpy as np
from sklearn import linear_model
from sklearn import pipeline
from sklearn import preprocessing
import tensorflow as tf

from ssgan_tf import errors
from ssgan_tf.evaluation import records as records_lib


def discriminator_features(discriminator, labelled_images, num=None, batch_size=256):
  """D's features of the first `num` (image, label) pairs of a dataset.

  Args:
    discriminator: maps images `[B, H, H, C]` in [-1, 1] to a dict with "features"
      `[B, F]`.
    labelled_images: unbatched `tf.data.Dataset` of (image, int label).
    num: examples to take; None = all.
    batch_size: images per D call.

  Returns:
    `(features [n, F] float32, labels [n] int64)` NumPy arrays.
  """
  featurize = tf.function(lambda images: discriminator(images, training=False)["features"])
  dataset = labelled_images if num is None else labelled_images.take(num)
  features, labels = [], []
  for images, batch_labels in dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE):
    features.append(featurize(images).numpy())
    labels.append(batch_labels.numpy())
  if not features:
    raise errors.DataError("the labelled split is empty; check the dataset and split names.")
  return np.concatenate(features), np.concatenate(labels).astype(np.int64)


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


def linear_probe(discriminator, source, *, train_split="train", test_split="test",
                 num_train=None, num_test=None, batch_size=256, inverse_l2=1.0,
                 max_iter=1000):
  """Probes `discriminator` on `source`'s labelled splits.

  Args:
    discriminator: SS-GAN's D (nets/discriminator.py).
    source: a labelled `data.ImageSource` (`images(split, with_labels=True)`).
    train_split, test_split: splits to fit and to score on.
    num_train, num_test: examples taken from each split; None = all.
    Others: see `discriminator_features` and `fit_probe`.

  Returns:
    `{"top1": accuracy in [0, 1], "num_train": n, "num_test": m}`.
  """
  train = discriminator_features(discriminator, source.images(train_split, with_labels=True),
                                 num_train, batch_size)
  test = discriminator_features(discriminator, source.images(test_split, with_labels=True),
                                num_test, batch_size)
  top1 = fit_probe(*train, *test, inverse_l2=inverse_l2, max_iter=max_iter)
  return {"top1": top1, "num_train": len(train[1]), "num_test": len(test[1])}


def run_probe(workdir, restored, *, test_split="test", **probe_kwargs):
  """Probes restored weights and appends the record `probe_top1_<test_split>`.

  Args:
    workdir: the run's directory (records.py).
    restored: `workdir.restore_for_inference(...)`'s result.
    test_split, **probe_kwargs: see `linear_probe`.

  Returns:
    The record written (records.RECORD_KEYS + "num_train").
  """
  result = linear_probe(restored.model.discriminator, restored.source,
                        test_split=test_split, **probe_kwargs)
  record = {"step": int(restored.step), "checkpoint": restored.checkpoint_path,
            "metric": f"probe_top1_{test_split}", "value": result["top1"],
            "num_real": result["num_test"], "num_fake": 0,
            "classifier": "logistic_regression(discriminator_features)",
            "num_train": result["num_train"]}
  records_lib.append_records(workdir, [record])
  return record
