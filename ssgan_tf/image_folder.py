"""Stage 1, image folders: which files a folder holds, and whether TensorFlow decodes each.

`list_images(image_dir)` lists a folder's images; `check_images(image_dir, paths,
cache_dir)` makes sure every one of them decodes before training starts, and remembers a
folder that passed. `data.get_source("folder", ...)` calls both (data.py says how the
images are then decoded, resized and labelled).

Listing: `.png .jpg .jpeg .bmp .gif .webp` (any case) under `image_dir`, searched
recursively (local, or any tf.io.gfile path such as gs://); hidden files and folders
(".name") are skipped.

Checking, in threads: PNG by PIL (structure and chunk CRCs, `verify()`), other formats by
TensorFlow's decoder (JPEG at 1/8 scale), about 0.8 ms of CPU per 256-512 px JPEG. Any
unreadable file is an error naming it, since a silently smaller data set would skew
training and FID, and a file that fails in training stops it without naming the file. A
folder that passed is recorded by its fingerprint (a digest of every file's path, size
and modification time) under `<cache dir>/folder_checks/`; while the fingerprint is
unchanged, later starts (a resume, an evaluation) skip the check, which reads every byte
of the data set. The fingerprint also serves as the source's `content_id`, so that caches
of its activations follow its files.
"""

import collections
import concurrent.futures
import hashlib
import io
import json
import os
import re
import time

from absl import logging
import PIL.Image
import tensorflow as tf

from ssgan_tf import files
from ssgan_tf.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# Formats that PIL may detect in those files and TensorFlow's decode_image reads
# (MPO is the multi-picture JPEG variant some cameras write).
_TF_DECODABLE_FORMATS = ("PNG", "JPEG", "MPO", "BMP", "GIF", "WEBP")
# A PNG's end chunk, CRC included: PIL's verify() stops at its type, libpng reads it whole.
_PNG_END = b"IEND\xaeB`\x82"
# Part of every folder fingerprint: raise it when the check gets stricter, so that the
# folders that passed a laxer one are checked again.
_CHECK_VERSION = 2


def list_images(image_dir):
  """Sorted image paths under `image_dir`, hidden files and folders skipped. A local link
  to a folder inside `image_dir` (a loop, a second name) is skipped, as that folder is
  listed under its own name; one to a folder outside is followed, once per folder."""
  paths, seen = [], set()
  local = "://" not in image_dir
  top = os.path.realpath(image_dir) if local else None
  for folder, subfolders, names in tf.io.gfile.walk(image_dir):
    if local:
      real = os.path.realpath(folder)
      if real in seen:
        subfolders[:] = []
        continue
      seen.add(real)
    # In place: walk descends into the subfolders left in this list, in its order.
    subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")
                           and not (local and _links_inside(os.path.join(folder, d), top)))
    paths += [os.path.join(folder, f) for f in names
              if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
  return sorted(paths)


def _links_inside(path, folder):
  """Whether local `path` is a link to `folder` (a real path) or to a folder under it."""
  return os.path.islink(path) and inside(os.path.realpath(path), folder)


def inside(path, folder):
  """Whether local real path `path` is `folder` or lies under it."""
  return os.path.commonpath([folder, path]) == folder


def _unreadable_reason(path):
  """Why the pipeline's `_decode` would fail on `path`, or None.

  PIL reads the header, to name a format TensorFlow lacks (TIFF, say), and checks a PNG's
  chunk CRCs: that catches truncation and damage at a twentieth of a decode's cost. Other
  formats are decoded by TensorFlow, the pipeline's own decoder, as PIL's `verify()` reads
  no JPEG, WebP or GIF image data and PIL opens BMPs that TensorFlow cannot (1-bit). JPEG
  is decoded at 1/8 scale, which still reads all of its data.
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      contents = f.read()
    if not contents:
      return "an empty file"
    # PIL gets the bytes, not the GFile: its format probing seeks past the end of small
    # files, which a GFile reports as an error.
    with PIL.Image.open(io.BytesIO(contents)) as image:
      image_format = image.format
      if image_format == "PNG":
        image.verify()
        if contents.rfind(_PNG_END) < 0:
          return "a PNG cut short: its end chunk is incomplete"
  except PIL.UnidentifiedImageError:  # Its message names the BytesIO object.
    return "cannot identify image file"
  except Exception as e:  # pylint: disable=broad-except  # PIL raises many types.
    return f"{type(e).__name__}: {e}".splitlines()[0]
  if image_format not in _TF_DECODABLE_FORMATS:
    return f"{image_format} data, which TensorFlow cannot decode"
  try:
    if image_format in ("JPEG", "MPO"):
      tf.io.decode_jpeg(contents, ratio=8)
    elif image_format != "PNG":
      tf.io.decode_image(contents, expand_animations=False)
  except tf.errors.InvalidArgumentError as e:
    # e.message: "{{function_node ...}} What went wrong. [Op:...]".
    what = re.sub(r"\{\{.*?\}\} | \[Op:.*", "", e.message)
    return f"TensorFlow cannot decode it: {what.rstrip('.')}"
  return None


# A line of progress this often while a large folder is checked.
_CHECK_PROGRESS_SECONDS = 10
# Files checked per round of the thread pool (a future per file of 200k took 330 MB).
_CHECK_CHUNK = 1000


def _unreadable_images(paths):
  """`[(path, reason)]` of the `paths` that `_unreadable_reason` rejects, checked in
  threads (TensorFlow decodes without the GIL; remote files wait on the network)."""
  last_report = time.monotonic()
  bad = []
  with concurrent.futures.ThreadPoolExecutor() as pool:
    for begin in range(0, len(paths), _CHECK_CHUNK):
      chunk = paths[begin:begin + _CHECK_CHUNK]
      bad += [(path, reason) for path, reason in zip(chunk, pool.map(_unreadable_reason, chunk))
              if reason]
      if time.monotonic() - last_report >= _CHECK_PROGRESS_SECONDS:
        last_report = time.monotonic()
        logging.info("Checked %d of %d images.", begin + len(chunk), len(paths))
  return bad


def fingerprint(paths):
  """A hex digest of every path with its size and modification time (remote files are
  stat'ed in threads: a request each)."""
  def size_and_time(path):
    if "://" in path:
      stat = tf.io.gfile.stat(path)
      return stat.length, stat.mtime_nsec
    try:
      stat = os.stat(path)
    except OSError:  # A broken link, say: the check names it.
      return -1, -1
    return stat.st_size, stat.st_mtime_ns

  digest = hashlib.sha256(f"check {_CHECK_VERSION}\n".encode())
  with concurrent.futures.ThreadPoolExecutor() as pool:
    remote = any("://" in path for path in paths)
    for path, (size, mtime) in zip(paths, (pool.map if remote else map)(size_and_time, paths)):
      name = path if remote else os.path.abspath(path)  # The same, from any directory.
      digest.update(f"{name}\0{size}\0{mtime}\n".encode())
  return digest.hexdigest()


def _check_record_path(image_dir, cache_dir):
  if "://" not in image_dir:
    image_dir = os.path.abspath(image_dir)  # One record, however the folder is named.
  name = hashlib.sha256(image_dir.encode()).hexdigest()[:16]
  return os.path.join(cache_dir, "folder_checks", f"{name}.json")


def _passed_before(image_dir, fingerprint, cache_dir):
  """Whether the folder passed the check with these very files (its check record)."""
  try:
    with tf.io.gfile.GFile(_check_record_path(image_dir, cache_dir)) as f:
      record = json.load(f)
  except (tf.errors.OpError, ValueError):
    return False
  return isinstance(record, dict) and record.get("fingerprint") == fingerprint


def _record_pass(image_dir, fingerprint, num_images, cache_dir):
  """Records that the folder passed the check; a cache that cannot be written only
  costs the check at the next start."""
  path = _check_record_path(image_dir, cache_dir)
  record = {"image_dir": image_dir, "fingerprint": fingerprint, "images": num_images,
            "checked": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
  try:
    files.write_atomically(path, json.dumps(record))
  except tf.errors.OpError as e:
    logging.info("Could not record the check of %s in %s (%s); the next start checks "
                 "it again.", image_dir, path, e.message)


def _unreadable_message(bad, num_paths, image_dir, shown=3):
  """The one-line error for `bad` `[(path, reason)]`: a count per reason and the first
  `shown` files; every file is logged above it (a folder may hold thousands)."""
  for path, reason in bad:
    logging.warning("cannot read %s (%s)", path, reason)
  named = "; ".join(f"{path} ({reason})" for path, reason in bad[:shown])
  if len(bad) > shown:
    counts = collections.Counter(reason for _, reason in bad).most_common()
    named += (f"; and {len(bad) - shown} more, each named in a warning above (in all: "
              f"{', '.join(f'{n} x {reason}' for reason, n in counts)})")
  return (f"{len(bad)} of {num_paths} images in {image_dir} cannot be read: {named}. "
          "Remove or re-save them.")


def check_images(image_dir, paths, cache_dir):
  """Makes sure TensorFlow decodes every image of `paths` (the folder's `list_images`),
  unless the folder passed before with these very files.

  Args:
    image_dir: the folder, as the user named it (the record is keyed by its absolute path).
    paths: its images.
    cache_dir: where the records of the folders that passed are kept (local or gfile URL).

  Returns:
    `(fingerprint, how)`: the files' hex digest, and how they were found readable, for
    the log ("checked in 1.2 s", "unchanged since they passed the check").

  Raises:
    DataError naming the unreadable files and why each cannot be read.
  """
  start = time.monotonic()
  digest = fingerprint(paths)
  if _passed_before(image_dir, digest, cache_dir):
    return digest, "unchanged since they passed the check"
  bad = _unreadable_images(paths)
  if bad:
    raise DataError(_unreadable_message(bad, len(paths), image_dir))
  _record_pass(image_dir, digest, len(paths), cache_dir)
  return digest, f"checked in {time.monotonic() - start:.1f} s"
