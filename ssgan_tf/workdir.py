"""The workdir: its layout, its model description and its checkpoints.

Training, evaluation, export and the probe all read and write a workdir through this
module. A workdir only grows:
  operative_config.gin      every gin parameter of the run, written after its first step
                            (a resumed run with other settings adds operative_config-<step>.gin)
  model_info.json           image shape, architecture, z_dim, z_distribution; for a
                            conditional model also num_classes, (label_distribution
                            "train") label_counts, the fakes' label distribution, and
                            class_names where the data names its classes
  lock.json                 while a trainer runs: its host and pid (workdir_lock.py)
  checkpoints/ckpt-<step>   G, D, both optimizers (slots, step counters), the noise RNG,
                            the EMA of G (if any) (checkpoints.py: unreadable ones renamed
                            ckpt-<step>.unreadable-*)
  samples/fakes_<step>.png  sample grids (sample_grid_name)
  train/, eval/             TensorBoard logs
  metrics.jsonl             evaluation records (evaluation/records.py)
  export/<step>/            SavedModels (export_lib.py)
Paths may be local or any tf.io.gfile URL (gs://...).
"""

import dataclasses
import functools
import json
import os
import re

import gin
import tensorflow as tf
from absl import logging

from ssgan_tf import checkpoints
from ssgan_tf import data
from ssgan_tf import files
from ssgan_tf import precision
from ssgan_tf import ssgan
from ssgan_tf.errors import ConfigError
from ssgan_tf.errors import WorkdirError

CHECKPOINTS = "checkpoints"
OPERATIVE_CONFIG = "operative_config.gin"
_RESUMED_CONFIG = re.compile(r"operative_config-(\d+)\.gin")  # resumed_config_path's names.
MODEL_INFO = "model_info.json"
SAMPLES = "samples"
EXPORT = "export"
METRICS = "metrics.jsonl"
TRAIN_LOGS = "train"
EVAL_LOGS = "eval"


def sample_grid_name(step):
  """The sample grid of generator step `step` in SAMPLES: "fakes_00001200.png"."""
  return f"fakes_{step:08d}.png"


# Model description.

# Keys model_info.json gained after workdirs existed without them: a saved description
# that lacks one still describes the configured model. (num_classes is not among them: an
# unconditional workdir is not a conditional model's, nor the other way round.)
_ADDED_LATER = ("z_distribution",)
# Describes the data, not the model: a resume on renamed class folders is the same model,
# and the names recorded at the start stay (the file is written once).
CLASS_NAMES = "class_names"


def model_info(model, image_shape, class_names=None):
  """The model_info.json dict of `model` (an SSGAN) trained on `image_shape` images; a
  conditional model's also holds `class_names` (label i's name) when the data has them."""
  info = {"image_shape": list(image_shape), **model.info}
  if model.num_classes is not None and class_names:
    info[CLASS_NAMES] = list(class_names)
  return info


_TRAIN_FIX = (f"use a new --workdir, or the config it was trained with (its "
              f"{OPERATIVE_CONFIG})")


def check_model_info(workdir, info, write, fix=_TRAIN_FIX):
  """Writes model_info.json on a new workdir; on an old one, checks it describes the same
  model, so another model's checkpoints are never touched.

  Args:
    workdir: the workdir.
    info: `model_info(...)` of the configured model.
    write: whether this process may write (the chief).
    fix: what the error tells the user to do (default: a training run's fixes).
  """
  path = os.path.join(workdir, MODEL_INFO)
  if tf.io.gfile.exists(path):
    saved = read_model_info(workdir)
    # Workdirs from before z_distribution was recorded describe the same models.
    same = {k: v for k, v in info.items()
            if k != CLASS_NAMES and (k in saved or k not in _ADDED_LATER)}
    if same != {k: v for k, v in saved.items() if k != CLASS_NAMES}:
      raise WorkdirError(
          f"workdir {workdir!r} holds a different model ({saved}, configured: {info}); "
          f"{fix}.")
    if CLASS_NAMES in saved and CLASS_NAMES in info and saved[CLASS_NAMES] != info[CLASS_NAMES]:
      logging.warning("the data's classes %s are not those this model was trained on, %s "
                      "(model_info.json): label i is now the data's i-th class; if folders "
                      "were renamed so that their order changed, the labels changed meaning.",
                      info[CLASS_NAMES], saved[CLASS_NAMES])
  elif write:
    files.write_atomically(path, json.dumps(info))


def read_model_info(workdir):
  with tf.io.gfile.GFile(os.path.join(workdir, MODEL_INFO)) as f:
    return json.load(f)


# Checkpoints.

_EMA_VARIABLES = "ema_generator_variables"  # The average's variables in a checkpoint.


def make_checkpoint(model):
  """Everything exact resumption needs; the step is `g_optimizer.iterations`.

  Keras 3 does not make layers held in Python lists (SNDCGAN's convs, the ResNet blocks)
  checkpoint dependencies of their model: their weights would reach the checkpoint only
  through the optimizers, and their BN moving statistics and spectral-norm `u` not at
  all. So every G and D variable is also tracked by its position in `variables`; so is
  every variable of the EMA of G (ema.py: its weights and its own BN statistics), when the
  model keeps one. A model without one saves what it saved before. A checkpoint without
  an average does not restore into a model with one (`check_average` says why); one with
  an average restores into a model without one, which ignores the average (training
  refuses that too: a run keeps its choice).
  """
  ema = {}
  if model.ema_generator is not None:
    ema = {"ema_generator": model.ema_generator,
           _EMA_VARIABLES: list(model.ema_generator.variables)}
  return tf.train.Checkpoint(generator=model.generator, discriminator=model.discriminator,
                             d_optimizer=model.d_optimizer, g_optimizer=model.g_optimizer,
                             noise=model.noise,
                             generator_variables=list(model.generator.variables),
                             discriminator_variables=list(model.discriminator.variables),
                             **ema)


def check_average(checkpoint_path, model):
  """ConfigError if `model` and the checkpoint differ in keeping an average of G's
  weights (ssgan.ema_decay): a run keeps its choice (a run that dropped it could not be
  resumed by its own command again, and its metrics would change names halfway)."""
  kept = any(name.startswith(_EMA_VARIABLES + "/")
             for name, _ in tf.train.list_variables(checkpoint_path))
  if model.ema_generator is not None and not kept:
    raise ConfigError(
        f"checkpoint {checkpoint_path} was trained without an average of G's weights and "
        "the config keeps one (ssgan.ema_decay); a run keeps its choice: drop "
        "ssgan.ema_decay, or start a new --workdir.")
  if model.ema_generator is None and kept:
    raise ConfigError(
        f"checkpoint {checkpoint_path} keeps an average of G's weights and the config "
        "drops it (ssgan.ema_decay = None); a run keeps its choice: set ssgan.ema_decay "
        "as it was trained (its operative_config.gin), or start a new --workdir.")


def checkpoint_dir(workdir):
  return os.path.join(workdir, CHECKPOINTS)


def latest_checkpoint(workdir):
  """The newest checkpoint path of `workdir`, or None: the state file's newest, or without
  a usable state file the highest-numbered one on disk (checkpoints.list_checkpoints)."""
  paths = checkpoints.list_checkpoints(checkpoint_dir(workdir))
  return paths[0] if paths else None


def _others_on_disk(workdir, path):
  """'choose one with --checkpoint=N (on disk: 20, 30)', `path`'s step left out."""
  steps = [n for n in checkpoints.steps_on_disk(checkpoint_dir(workdir))
           if os.path.join(checkpoint_dir(workdir), f"{checkpoints.NAME}-{n}") != path]
  if not steps:
    return "no other checkpoint is on disk"
  return f"choose one with --checkpoint=N (on disk: {', '.join(map(str, steps))})"


def check_no_earlier_outputs(workdir):
  """For a training that finds no checkpoint to resume in `workdir`: raises a one-line
  WorkdirError if an earlier run's sample grids or evaluation records are there (its
  checkpoints moved or deleted), as training from step 0 would write its grids over
  them and its records among them. Creates nothing."""
  found = []
  grids = sorted(tf.io.gfile.glob(os.path.join(workdir, SAMPLES, "fakes_*.png")))
  if grids:
    found.append(f"{len(grids)} sample grid(s) (the last {os.path.basename(grids[-1])})")
  metrics = os.path.join(workdir, METRICS)
  if tf.io.gfile.exists(metrics) and tf.io.gfile.stat(metrics).length:
    found.append(f"evaluation records ({METRICS})")
  if found:
    raise WorkdirError(
        f"workdir {workdir!r} has no checkpoint to resume, but an earlier run's "
        f"{' and '.join(found)}: training from step 0 would write over them. Put its "
        f"{CHECKPOINTS}/ back to resume, or train in a new --workdir (or move "
        f"{SAMPLES}/ and {METRICS} away first).")


def checkpoint_path(workdir, checkpoint=None):
  """The path of `checkpoint`: None (the latest), a step number, or a path.

  Raises:
    WorkdirError: the workdir has no checkpoint, or not the one asked for.
  """
  if tf.io.gfile.exists(workdir) and not tf.io.gfile.isdir(workdir):
    raise WorkdirError(f"workdir {workdir!r} is a file, not a folder; pass a training "
                       "workdir.")
  if not tf.io.gfile.isdir(workdir):
    raise WorkdirError(f"workdir {workdir!r} does not exist; pass a training workdir, or "
                       f"train first: python -m ssgan_tf.main --gin_file=... "
                       f"--workdir={workdir}")
  latest = latest_checkpoint(workdir)
  if not latest:
    raise WorkdirError(f"no checkpoint in {workdir!r}; train first: python -m ssgan_tf.main "
                       f"--gin_file=... --workdir={workdir}")
  if not tf.io.gfile.exists(os.path.join(workdir, OPERATIVE_CONFIG)):
    raise WorkdirError(
        f"{workdir!r} has checkpoints but no {OPERATIVE_CONFIG} (training stopped before "
        "its first step was done); run its training command again, which resumes and "
        "writes it (with train.total_steps one higher if the run had reached it).")
  if checkpoint is None:
    return latest
  path = (os.path.join(checkpoint_dir(workdir), f"{checkpoints.NAME}-{checkpoint}")
          if str(checkpoint).isdigit() else str(checkpoint))
  if not tf.io.gfile.exists(path + ".index"):
    raise WorkdirError(f"no checkpoint {path!r}; {_others_on_disk(workdir, path)}.")
  return path


def _restore_readable(model, workdir, path, follow_latest):
  """Restores checkpoint `path` of `workdir` into `model`; returns the path restored.

  If `follow_latest` (`path` was the latest, none was named) and a running trainer's
  rotation deleted it meanwhile, the new latest is restored instead. A damaged or deleted
  checkpoint is a WorkdirError naming it.
  """
  while True:
    try:
      checkpoints.restore(make_checkpoint(model), path)
      return path
    except checkpoints.CheckpointMismatchError as e:
      if os.path.dirname(path) == checkpoint_dir(workdir):
        fix = (f"{workdir}'s operative config no longer builds the model its checkpoints "
               "hold (was it edited?); undo that edit")
      else:
        fix = (f"it is not a checkpoint of the model in {workdir} (its model_info.json and "
               "operative config); pass one of that workdir's checkpoints, or the workdir "
               "the checkpoint was trained in")
      raise checkpoints.CheckpointMismatchError(e.path, e.detail, fix=fix) from e
    except checkpoints.UnreadableCheckpointError as e:
      latest = latest_checkpoint(workdir) if follow_latest else None
      if latest and latest != path:
        logging.info("%s was replaced by %s while it was read; reading that.", path, latest)
        path = latest
        continue
      if not tf.io.gfile.exists(path + ".index"):
        raise WorkdirError(
            f"checkpoint {path} is no longer on disk (moved or deleted; a trainer running "
            f"in {workdir} deletes all but its train.keep_checkpoints newest); "
            f"{_others_on_disk(workdir, path)}.") from e
      raise WorkdirError(f"checkpoint {path} cannot be read ({e.reason}); "
                         f"{_others_on_disk(workdir, path)}.") from e


# Inference.

@dataclasses.dataclass
class Restored:
  """A trained model rebuilt from a workdir for inference (evaluation, export, probe).

  `model` is an `ssgan.SSGAN`, or for evaluation an `export_lib.ExportedGenerator`.
  """
  model: ssgan.SSGAN
  step: int
  checkpoint_path: str
  image_shape: tuple
  config_path: str  # The operative config that trained `step` (`operative_config_path`).
  class_names: list = None  # Label i's name, where model_info.json records them.

  @functools.cached_property
  def source(self):
    """The training data source (built on first use: it may need the dataset)."""
    return data.get_source()


def restore_for_inference(workdir, checkpoint=None):
  """Rebuilds the workdir's model from its operative config and restores a checkpoint.

  This is the one place that reads a workdir's configuration back: the operative config
  is parsed into gin (over what gin holds already, which in a fresh process is nothing,
  so the model is rebuilt exactly as trained); bindings parsed afterwards (evaluation.*)
  apply to what is built afterwards.

  Args:
    workdir: a training workdir.
    checkpoint: None (the latest), a step number, or a checkpoint path.

  Returns:
    `Restored`; the model is float32 on the default strategy, G and D in eval use.

  Raises:
    WorkdirError: no such checkpoint, or it cannot be read (damaged, deleted meanwhile);
      the message lists the steps on disk.
    checkpoints.CheckpointMismatchError: it holds another model.
  """
  path = checkpoint_path(workdir, checkpoint)
  config = operative_config_path(workdir, checkpoints.step_of(path) or 0)
  gin.parse_config_file(config, skip_unknown=True)
  info = read_model_info(workdir)
  image_shape = tuple(info["image_shape"])
  with precision.policy("float32"):
    # A conditional model's classes and label distribution as trained, without the data.
    model = ssgan.build_model(tf.distribute.get_strategy(), image_shape,
                              num_classes=info.get("num_classes"),
                              label_counts=info.get("label_counts"))
  path = _restore_readable(model, workdir, path, follow_latest=checkpoint is None)
  return Restored(model, model.step, path, image_shape, config, info.get(CLASS_NAMES))


def operative_config_path(workdir, step):
  """The operative config that trained checkpoint `step`: the newest
  `operative_config-<s>.gin` with s < `step` (a run resumed at step s with other settings
  writes it and trains steps s+1 on; it never saves ckpt-s again), else
  `operative_config.gin`; None if there is none (a new run)."""
  steps = [int(match.group(1)) for match in map(_RESUMED_CONFIG.fullmatch,
                                                 tf.io.gfile.listdir(workdir))
           if match and int(match.group(1)) < step]
  if steps:
    return resumed_config_path(workdir, max(steps))
  path = os.path.join(workdir, OPERATIVE_CONFIG)
  return path if tf.io.gfile.exists(path) else None


def read_operative_config(workdir, step):
  """The text of `operative_config_path(workdir, step)`; None if there is none."""
  path = operative_config_path(workdir, step)
  if path is None:
    return None
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def resumed_config_path(workdir, step):
  """Where a run resumed at `step` with other settings records its operative config."""
  return os.path.join(workdir, f"operative_config-{step}.gin")
