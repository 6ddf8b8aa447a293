"""Train, evaluate, export or probe an SS-GAN (installed: `ssgan-tf`, the same flags).

  python -m ssgan_tf.main --gin_file=gin_configs/quickstart.gin --workdir=runs/quickstart
  python -m ssgan_tf.main --mode=eval --workdir=runs/quickstart
  python -m ssgan_tf.main --mode=export --workdir=runs/quickstart

Running the same training command again resumes from the newest checkpoint. Configs and
their settings: gin_configs/README.md. Exit status: 0 done; 1 bad input or a diverged run
(one line says what and how to fix it; -v 1 adds its traceback); 75 stopped by SIGTERM
(in training or not) or a first Ctrl-C during training, after saving the step where it
could (run it again to resume); 130 Ctrl-C before training, or a second one during it (not
saved). Any other failure is a bug and keeps its traceback.

This module parses gin, builds the strategy and calls one library function; it and
study.py (the study runner) are the only modules with command-line flags.
"""

import importlib.util
import json
import logging
import os
import re
import signal
import sys

# TensorFlow's C++ INFO lines (each checkpoint's sharding time, ...) are noise for a user;
# warnings and errors still show. (TensorFlow 2.21 prints its few loading lines, oneDNN's
# and the CUDA driver's, before it reads this: README, "Errors and exit status".)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import gin  # noqa: E402
from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from ssgan_tf import cpu_kernels  # noqa: E402

cpu_kernels.prefer_onednn()  # Before TensorFlow loads (below, in run()).
from ssgan_tf import errors  # noqa: E402  (no TensorFlow: the checks below stay fast)
from ssgan_tf import gin_files  # noqa: E402

flags.DEFINE_multi_string("gin_file", [], "Gin config file(s), applied in order.")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings applied after the files, e.g. "
                          "--gin_param='train.total_steps=200'.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, summaries, samples, exports.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "export", "probe"],
                  "train; eval (sample metrics, metrics.jsonl); export (a SavedModel); "
                  "probe (linear probe of D's features, metrics.jsonl).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy: one device; all local GPUs (mirrored); the "
                  "cluster in TF_CONFIG (multi_worker); a Cloud TPU (untested).")
flags.DEFINE_integer("num_cpu_devices", 0, "With --strategy=mirrored on a host without "
                     "GPUs: split the CPU into this many replicas (for testing).", lower_bound=0)
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
flags.DEFINE_string("data_dir", None, "TFDS data directory (sets dataset.data_dir).")
flags.DEFINE_string("checkpoint", None, "eval/export/probe: a step number or checkpoint "
                    "path (default: the latest in --workdir).")
flags.DEFINE_string("export_dir", None, "eval: evaluate this export (WORKDIR/export/<step>) "
                    "instead of a checkpoint; records go to --workdir.")
flags.DEFINE_string("inception_path", None, "A local copy of TF-GAN's Inception SavedModel "
                    "(https://tfhub.dev/tensorflow/tfgan/eval/inception/1); without it, "
                    "Inception is read from the TF-Hub cache ($TFHUB_CACHE_DIR).")
flags.DEFINE_bool("overwrite", False, "export: replace an existing export of the same step.")
flags.DEFINE_bool("include_discriminator", False, "export: add D as a `discriminate` "
                  "signature (features and rotation logits, for analysis).")
flags.DEFINE_bool("allow_download", False, "Let TFDS and TF-Hub download what is missing "
                  "(off by default: offline they retry for minutes).")
flags.mark_flag_as_required("workdir")

FLAGS = flags.FLAGS

# What --gin_param may set in --mode=eval and probe (the model comes from the workdir).
EVALUATION_CONFIGURABLES = ("evaluation", "classifier", "probe", "dataset")

# 128 + SIGINT, as shells report a process that Ctrl-C ended.
EXIT_CODE_INTERRUPTED = 130


class _Terminated(BaseException):
  """SIGTERM outside training's own handler (start-up, evaluation, export): unwinds like
  KeyboardInterrupt, so that the workdir's lock is released and no file is left half
  written, then exits with errors.EXIT_CODE_PREEMPTED, which schedulers requeue on."""


def _raise_terminated(signum, frame):
  del frame
  # A second SIGTERM (a scheduler that repeats it, say) ends the process at once, as it
  # would have before: the unwinding of the first is not interrupted by another raise.
  signal.signal(signum, signal.SIG_DFL)
  raise _Terminated()


# Flags that name files or folders (--checkpoint may be a checkpoint's path).
PATH_FLAGS = ("workdir", "gin_file", "export_dir", "inception_path", "checkpoint")


def run(argv):
  del argv
  _expand_home(PATH_FLAGS)
  if not FLAGS.workdir.strip():  # "" would put checkpoints/ in the working directory.
    raise errors.ConfigError("--workdir is empty; name a folder, e.g. --workdir=runs/mine.")
  gin_files.check_syntax(FLAGS.gin_file, FLAGS.gin_param)  # Before the slow imports.
  if FLAGS.mode == "export" and (FLAGS.gin_file or FLAGS.gin_param):
    raise errors.ConfigError(
        "--mode=export takes no --gin_file/--gin_param: an export is rebuilt from the "
        "workdir's operative_config.gin alone; drop them.")
  if FLAGS.export_dir and (FLAGS.mode != "eval" or FLAGS.checkpoint):
    raise errors.ConfigError("--export_dir is for --mode=eval, instead of --checkpoint.")
  # Imported here so that `--help` and the checks above are fast (no TensorFlow), and
  # so that gin sees every configurable.
  from ssgan_tf import distribute
  from ssgan_tf import export_lib
  from ssgan_tf import train_lib
  from ssgan_tf import workdir
  from ssgan_tf.evaluation import eval_lib
  from ssgan_tf.evaluation import probe

  with gin_files.missing_bindings_as_config_errors():
    if FLAGS.mode == "train":
      configure()
      strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices, FLAGS.tpu)
      train_lib.train(FLAGS.workdir, strategy)
    elif FLAGS.mode in ("eval", "probe"):
      # The workdir's (or export's) operative config rebuilds the model; the gin files and
      # bindings given here then set the evaluation (evaluation.*, classifier.*, probe.*).
      if FLAGS.export_dir:
        restored = export_lib.load_for_evaluation(FLAGS.export_dir)
        # Its records must not join another model's in --workdir (a folder without
        # model_info.json, e.g. one just for records, takes any).
        workdir.check_model_info(
            FLAGS.workdir, workdir.model_info(restored.model, restored.image_shape),
            write=False, fix="pass the export's own workdir, or a new folder, as --workdir")
      else:
        restored = workdir.restore_for_inference(FLAGS.workdir, FLAGS.checkpoint)
      trained_on = _dataset_name()
      configure()
      _check_evaluation_bindings(trained_on)
      if FLAGS.mode == "eval":
        eval_lib.evaluate(FLAGS.workdir, restored)
      else:
        print(json.dumps(probe.run_probe(FLAGS.workdir, restored)))
    else:
      print(export_lib.export(FLAGS.workdir, FLAGS.checkpoint, FLAGS.include_discriminator,
                              FLAGS.overwrite))


def _dataset_name():
  """The `dataset.name` gin holds now; None if unbound."""
  try:
    return gin.query_parameter("dataset.name")
  except ValueError:
    return None


def _check_evaluation_bindings(trained_on):
  """In --mode=eval/probe: warns of the --gin_param bindings that have no effect (the
  model is rebuilt as trained), and refuses another dataset than the one the model was
  trained on (`trained_on`). A run's own training --gin_file may be passed (the study
  runner does, for the evaluation.* settings in it): its model bindings change nothing,
  but another config's dataset.name would have evaluated on other data."""
  for param in gin_files.bindings_outside(FLAGS.gin_param, EVALUATION_CONFIGURABLES):
    absl_logging.warning("--gin_param=%s has no effect in --mode=%s: the model is "
                         "rebuilt as trained; only %s bindings apply.", param, FLAGS.mode,
                         ", ".join(f"{name}.*" for name in EVALUATION_CONFIGURABLES))
  asked = _dataset_name()
  if asked != trained_on:
    raise errors.ConfigError(
        f"dataset.name = {asked!r} (from --gin_file/--gin_param) is not the data "
        f"the model was trained on ({trained_on!r}); drop it: --mode={FLAGS.mode} reads "
        "the training data (dataset.data_dir, image_dir or cache_dir may point elsewhere).")


def _expand_home(names):
  """`~` in the path flags `names` as a shell would have it: a shell expands it only at a
  word's start, so `--workdir=~/runs` arrives as is (and a folder named `~` would be made
  in the working directory)."""
  for name in names:
    value = getattr(FLAGS, name)
    if isinstance(value, list):
      setattr(FLAGS, name, [os.path.expanduser(item) for item in value])
    elif value:
      setattr(FLAGS, name, os.path.expanduser(value))


_TENSORFLOW_DIR = os.path.join(
    importlib.util.find_spec("tensorflow").submodule_search_locations[0], "")


def _not_tensorflows_info(record):
  """A logging filter: False for an INFO line that TensorFlow's own Python logged (each
  checkpoint's sharding time, an export's renamed signature inputs), noise for a user.
  Its warnings, and every line of ours, still show."""
  return record.levelno > logging.INFO or not record.pathname.startswith(_TENSORFLOW_DIR)


def configure():
  """Parses --gin_file / --gin_param, then binds what the other flags set."""
  gin_files.parse(FLAGS.gin_file, FLAGS.gin_param)
  if FLAGS.data_dir:
    gin.bind_parameter("dataset.data_dir", FLAGS.data_dir)
  if FLAGS.inception_path:
    gin.bind_parameter("classifier.inception_path", FLAGS.inception_path)
  if FLAGS.allow_download:
    gin.bind_parameter("dataset.allow_download", True)
    gin.bind_parameter("classifier.allow_download", True)


def main(argv):
  absl_logging.get_absl_handler().addFilter(_not_tensorflows_info)
  previous = signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    with errors.user_errors_as_one_line():
      run(argv)
  except KeyboardInterrupt:  # Ctrl-C before training took it over, or a second one.
    print(f"error: interrupted by Ctrl-C; {_what_is_kept()}", file=sys.stderr)
    sys.exit(EXIT_CODE_INTERRUPTED)
  except _Terminated:
    print(f"error: stopped by SIGTERM outside the training steps; {_what_is_kept()}",
          file=sys.stderr)
    sys.exit(errors.EXIT_CODE_PREEMPTED)
  finally:
    signal.signal(signal.SIGTERM, previous)


def _what_is_kept():
  if FLAGS.mode == "train":
    return "the checkpoints saved so far are kept (run the same command again to resume)."
  # Evaluation and probe records are appended at their end; an export is written whole.
  return f"the {FLAGS.mode} wrote nothing (run the same command again)."


def _parse_flags(argv):
  """absl's flag parsing, except that a help asked for exits 0 (absl's help flags exit 1,
  which scripts read as a failure)."""
  try:
    return app.parse_flags_with_usage(argv)
  except SystemExit as e:
    flags_given = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if e.code == 1 and any(re.fullmatch(r"--?(help|helpshort|helpfull|\?)", arg)
                           for arg in flags_given):
      raise SystemExit(0) from None
    raise


def cli():
  """The `ssgan-tf` console command (pyproject.toml)."""
  # absl's --help shows the docstring of __main__ and the flags defined in the program's
  # file (sys.argv[0]); the console script is a wrapper with neither.
  sys.modules["__main__"].__doc__ = __doc__
  for flag in FLAGS.get_key_flags_for_module(__name__):
    FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  try:
    app.run(main, flags_parser=_parse_flags)
  except SystemExit as e:
    if e.code and "tensorflow" in sys.modules:
      # The program stops on an error: what TensorFlow warns of as its objects go would
      # follow the one-line error (a restore that failed on another model: dozens of
      # values it left unrestored).
      sys.modules["tensorflow"].get_logger().setLevel(logging.ERROR)
    raise


if __name__ == "__main__":
  cli()
