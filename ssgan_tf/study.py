"""A study: arms x seeds of ordinary training runs, then one Table-1-shaped report.

    python -m ssgan_tf.study --study=studies/mnist_table1.gin --workdir=runs/t1
    python -m ssgan_tf.study --study=... --workdir=... --print_commands   # for a scheduler
    python -m ssgan_tf.study --study=... --workdir=... --aggregate_only   # report only

The study file is gin syntax (comments allowed) binding only `study.*`, literals only:

    study.arms = {"gan": ["gin_configs/quickstart_baseline.gin"],
                  "ssgan_bn": ["gin_configs/quickstart.gin",
                               "networks.generator_normalization = 'batch_norm'"]}
    study.seeds = [0, 1, 2]            # default [0, 1, 2]
    study.eval_every = 500             # required: train.eval_every of every run
    study.gin_params = ["evaluation.metrics = ('fid', 'is', 'pr')"]   # every run; default []
    study.metric = "fmd500_test_ema"   # the headline metric; default: the first FID-like one
    study.probe_steps = ["final"]      # checkpoints to linear-probe (ints or "final"); default []

An arm is a list: one or more gin files (paths relative to the directory the runner is
started from, as `--gin_file`), then gin bindings. Arm names are folder names.

Each arm x seed is an ordinary training workdir `<workdir>/<arm>/seed<k>`, trained by an
ordinary subprocess (gin's global state never enters this process):

    python -m ssgan_tf.main --gin_file=<arm files> --gin_param=<study.gin_params>
        --gin_param=<arm bindings> --gin_param=train.eval_every=<N>
        --gin_param=train.seed=<k> --gin_param=ssgan.seed=<k> --workdir=<workdir>/<arm>/seed<k>

(the last three are the study's: binding them in the study's or an arm's bindings is an
error). Runs go seed by seed (every arm's seed 0, then every arm's seed 1, ...), so a
study stopped early still compares the arms. A run is finished when its latest checkpoint
is at `train.total_steps` (read from its gin files and bindings, without gin's registry)
and a metric record of that step exists; a re-run of the study skips finished runs,
resumes interrupted ones (training resumes exactly by itself), evaluates a trained run
whose final evaluation is missing (`--mode=eval --checkpoint=<step>`) and probes the
checkpoints of `study.probe_steps` not yet probed (`--mode=probe`).

A study may grow (more seeds, more arms, another metric or probe steps) but an arm's runs
keep the config they were started with: `<arm>/study_arm.json` records the arm's gin
files and bindings (study.gin_params, the arm's, train.eval_every) and a digest of each
file's statements (its includes too; comments aside), as the runner reads them just
before it starts one of the arm's runs or as --print_commands prints them; once one of
its runs has begun training (its model_info.json or a checkpoint exists), the runner
(then too), --print_commands and --aggregate_only refuse a study file or an edited gin
file that changes them. Bindings of `evaluation`, `probe`, `classifier` and
`dataset.data_dir`, `cache_dir`, `allow_download` may change (NOT_TRAINING): they
evaluate runs or find their data.
--aggregate_only also prints the commands that finish trained runs whose final
evaluation or a probe is missing (e.g. a preempted evaluation on a cluster).

The workdir:
    <arm>/seed<k>/          ordinary training workdirs
    <arm>/study_arm.json    the gin files (and digests) and bindings its runs started with
    logs/<arm>.seed<k>.log  every child's output (appended)
    study_log.jsonl         one line per child process: arm, seed, mode, seconds, status
    study.gin               a copy of the study file (the first one run)
    report.md, report.json, curves.png, probe.png, samples.png   (study_report.py)

Exit status: 0 done (report written); 1 a bad study file or a failed run (the others
still run, and the report covers what finished); 75 stopped by SIGTERM or Ctrl-C, the
running child saved its step (EX_TEMPFAIL: run the same command again).

Imports neither TensorFlow nor gin's registry: starting it is fast, and it never holds
training state.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

from gin import config_parser

from ssgan_tf import errors
from ssgan_tf import gin_files
from ssgan_tf import study_report
from ssgan_tf import study_runs
from ssgan_tf.study_runs import LOGS
from ssgan_tf.study_runs import log_path
from ssgan_tf.study_runs import STUDY_LOG
from ssgan_tf.study_runs import run_dir
from ssgan_tf.study_runs import run_state

SETTINGS = ("arms", "seeds", "eval_every", "gin_params", "metric", "probe_steps")
# Bound by the study itself for every run; an arm or study.gin_params may not bind them.
OWNED = {("train", "seed"), ("ssgan", "seed"), ("train", "eval_every")}
ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CHILD_HEADER = "=== "  # Starts the line each child's output follows in its run's log.
ARM_RECORD = "study_arm.json"
# Configurables, and (configurable, argument) pairs, that choose how runs are evaluated
# or where their data is found, not what they train: a study may change them later.
NOT_TRAINING = {"evaluation", "probe", "classifier"}
NOT_TRAINING_ARGS = {("dataset", "data_dir"), ("dataset", "cache_dir"),
                     ("dataset", "allow_download")}


@dataclasses.dataclass(frozen=True)
class Arm:
  """One arm: its gin files and bindings, and the run length they set.

  Attributes:
    name: the arm's name (a folder name).
    gin_files: paths as written in the study file.
    gin_params: the arm's own bindings (applied after study.gin_params).
    total_steps: train.total_steps of its runs (generator steps), read statically.
    gin_file_digests: ((path, sha256), ...) of the gin files and their includes, over
      their statements (comments and layout aside): `_arm_statements`.
  """
  name: str
  gin_files: tuple
  gin_params: tuple
  total_steps: int
  gin_file_digests: tuple = ()


@dataclasses.dataclass(frozen=True)
class Study:
  """A parsed, validated study file (`load_study`)."""
  path: str
  name: str
  arms: tuple  # Of Arm, in the file's order.
  seeds: tuple
  eval_every: int
  gin_params: tuple = ()
  metric: str = None
  probe_steps: tuple = ()  # Ints and/or "final".

  def runs(self):
    """Every (arm, seed), seed by seed."""
    return [(arm, seed) for seed in self.seeds for arm in self.arms]


class StudyInterrupted(errors.UserError):
  """The runner stopped on SIGTERM / SIGINT after its running child saved its step."""
  exit_code = errors.EXIT_CODE_PREEMPTED


class _Literals(config_parser.ParserDelegate):
  """Study files take literal values only."""

  def configurable_reference(self, scoped_name, evaluate):
    raise errors.ConfigError(f"a study file takes literal values only, not @{scoped_name}.")

  def macro(self, macro_name):
    raise errors.ConfigError(f"a study file takes literal values only, not %{macro_name}.")


def load_study(path):
  """Parses and validates a study file and its arms' gin files (they exist, parse and
  bind train.total_steps as a number); one-line ConfigErrors.

  Args:
    path: the study file (gin syntax, `study.*` bindings only).

  Returns:
    A `Study`.
  """
  if not os.path.isfile(path):
    raise errors.ConfigError(f"study file {path!r} not found; pass an existing file to "
                             "--study (see studies/).")
  with open(path) as f:
    text = f.read()
  values, lines = {}, {}
  for statement in gin_files.statements(text, path, _Literals()):
    if not isinstance(statement, config_parser.BindingStatement):
      raise errors.ConfigError(f"{path}, line {statement.location.line_num}: a study file "
                               "holds study.* bindings only (no include or import).")
    where = f"{path}, line {statement.location.line_num}"
    if statement.scope or statement.selector != "study" or statement.arg_name not in SETTINGS:
      name = "/".join(filter(None, [statement.scope, statement.selector]))
      raise errors.ConfigError(f"{where}: unknown setting {name}.{statement.arg_name}; a "
                               f"study file binds {['study.' + s for s in SETTINGS]}.")
    if statement.arg_name in values:
      raise errors.ConfigError(f"{where}: study.{statement.arg_name} is bound twice "
                               f"(also line {lines[statement.arg_name]}).")
    values[statement.arg_name] = statement.value
    lines[statement.arg_name] = statement.location.line_num

  def where(key):
    return f"{path}, line {lines[key]}: study.{key}" if key in lines else f"{path}: study.{key}"

  if "arms" not in values:
    raise errors.ConfigError(f"{path}: study.arms is required, e.g. study.arms = "
                             '{"gan": ["gin_configs/quickstart_baseline.gin"]}.')
  if "eval_every" not in values:
    raise errors.ConfigError(f"{path}: study.eval_every is required (generator steps "
                             "between evaluations of every run; the report needs them).")
  eval_every = values["eval_every"]
  if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
    raise errors.ConfigError(f"{where('eval_every')} must be an integer >= 1; got "
                             f"{eval_every!r}.")
  seeds = values.get("seeds", [0, 1, 2])
  if (not isinstance(seeds, (list, tuple)) or not seeds
      or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
    raise errors.ConfigError(f"{where('seeds')} must be a non-empty list of integers >= 0;"
                             f" got {seeds!r}.")
  if len(set(seeds)) != len(seeds):
    raise errors.ConfigError(f"{where('seeds')} repeats a seed: {list(seeds)!r}.")
  gin_params = _string_list(values.get("gin_params", []), where("gin_params"))
  for param in gin_params:
    _check_binding(param, where("gin_params"))
  metric = values.get("metric")
  if metric is not None and (not isinstance(metric, str) or not metric):
    raise errors.ConfigError(f"{where('metric')} must be a metric name such as "
                             f"'fid10k_test'; got {metric!r}.")
  probe_steps = values.get("probe_steps", [])
  if not isinstance(probe_steps, (list, tuple)) or any(
      s != "final" and (isinstance(s, bool) or not isinstance(s, int) or s < 1)
      for s in probe_steps):
    raise errors.ConfigError(f"{where('probe_steps')} must be a list of checkpoint steps "
                             f"(integers >= 1) and/or 'final'; got {probe_steps!r}.")
  arms = _parse_arms(values["arms"], where("arms"), tuple(gin_params))
  name = os.path.splitext(os.path.basename(path))[0]
  return Study(path=path, name=name, arms=arms, seeds=tuple(seeds), eval_every=eval_every,
               gin_params=tuple(gin_params), metric=metric,
               probe_steps=tuple(dict.fromkeys(probe_steps)))


def _string_list(value, where):
  if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
    raise errors.ConfigError(f"{where} must be a list of strings; got {value!r}.")
  return list(value)


def _check_binding(binding, where):
  """A gin binding string: parses, and binds nothing the study owns."""
  for statement in gin_files.statements(binding, f"{where} binding {binding!r}"):
    if not isinstance(statement, config_parser.BindingStatement):
      raise errors.ConfigError(f"{where}: {binding!r} is not a binding; put includes in a "
                               "gin file.")
    if (statement.selector.split(".")[-1], statement.arg_name) in OWNED:
      raise errors.ConfigError(
          f"{where}: {binding!r} binds {statement.selector}.{statement.arg_name}, which the "
          "study sets for every run (study.seeds, study.eval_every); drop it.")


def _parse_arms(arms, where, study_params):
  if not isinstance(arms, dict) or not arms:
    raise errors.ConfigError(f"{where} must be a non-empty dict {{name: [gin files..., "
                             f"bindings...]}}; got {arms!r}.")
  parsed = []
  for name, items in arms.items():
    if not isinstance(name, str) or not ARM_NAME.match(name):
      raise errors.ConfigError(f"{where}: arm name {name!r} must be a folder name (letters, "
                               "digits, '_', '-', '.').")
    if isinstance(items, str):
      items = [items]
    items = _string_list(items, f"{where}[{name!r}]")
    files = []
    while items and items[0].endswith(".gin") and "=" not in items[0]:
      files.append(items.pop(0))
    if not files:
      raise errors.ConfigError(f"{where}[{name!r}] must start with a gin file (e.g. "
                               f"'gin_configs/quickstart.gin'), then bindings; got "
                               f"{arms[name]!r}.")
    for binding in items:
      if binding.endswith(".gin") and "=" not in binding:
        raise errors.ConfigError(f"{where}[{name!r}]: gin file {binding!r} after a binding; "
                                 "list the files first.")
      _check_binding(binding, f"{where}[{name!r}]")
    parsed.append(_read_arm(name, files, items, study_params, f"{where}[{name!r}]"))
  return tuple(parsed)


def _read_arm(name, files, params, study_params, where):
  """An `Arm` whose total_steps and digests are those of its gin files as they are now."""
  file_statements, digests = _arm_statements(files, where)
  total_steps = _total_steps(file_statements, list(study_params) + list(params), where)
  return Arm(name, tuple(files), tuple(params), total_steps, tuple(sorted(digests.items())))


def reread_arm(study, arm):
  """`arm` with its gin files read again (they may have been edited since the study was
  loaded: its runs must be checked against, and recorded with, what they will read)."""
  return _read_arm(arm.name, arm.gin_files, arm.gin_params, study.gin_params,
                   f"{study.path}: study.arms[{arm.name!r}]")


def _arm_statements(files, where):
  """Reads an arm's gin files, their includes expanded in place and looked up as
  gin_files.parse does: in the top file's folder first, then the working directory.

  Returns:
    ([(statement, label)], {path: sha256}): the binding and import statements in order,
    each with "<path>, line N"; and per file read, a digest of the statements that
    `_trains` (comments and layout left out), so that a run's config can be told from an
    edited file's.
  """
  statements, digests = [], {}

  def read_file(path, top_folder):
    candidates = ([os.path.join(top_folder, path)] if top_folder is not None else []) + [path]
    existing = [c for c in candidates if os.path.isfile(c)]
    if not existing:
      raise errors.ConfigError(f"{where}: gin file {path!r} not found (paths are relative "
                               f"to the directory the study runs from, {os.getcwd()!r}).")
    with open(existing[0]) as f:
      parsed = gin_files.statements(f.read(), existing[0], _Canonical())
    digests[os.path.normpath(existing[0])] = hashlib.sha256(
        repr([tuple(s)[:-1] for s in parsed if _trains(s)]).encode()).hexdigest()
    for statement in parsed:
      if isinstance(statement, config_parser.IncludeStatement):
        read_file(statement.filename,
                  os.path.dirname(existing[0]) if top_folder is None else top_folder)
      else:
        statements.append((statement, f"{existing[0]}, line {statement.location.line_num}"))

  for path in files:
    read_file(path, None)
  return statements, digests


def _trains(statement):
  """False for a binding of NOT_TRAINING or NOT_TRAINING_ARGS; True for any other
  statement."""
  if not isinstance(statement, config_parser.BindingStatement):
    return True
  name = statement.selector.split(".")[-1]
  return name not in NOT_TRAINING and (name, statement.arg_name) not in NOT_TRAINING_ARGS


class _Canonical(config_parser.ParserDelegate):
  """References and macros as text, so that a digest of statements sees them change."""

  def configurable_reference(self, scoped_name, evaluate):
    return f"<@{scoped_name}{'()' if evaluate else ''}>"

  def macro(self, macro_name):
    return f"<%{macro_name}>"


def _total_steps(file_statements, params, where):
  """train.total_steps as the run will see it: the last unscoped binding over the files'
  statements (`_arm_statements`), then the bindings."""
  found = None
  statements = file_statements + [
      (statement, f"binding {param!r}") for param in params
      for statement in gin_files.statements(param, f"binding {param!r}")]
  for statement, source in statements:
    if (isinstance(statement, config_parser.BindingStatement) and not statement.scope
        and statement.selector.split(".")[-1] == "train"
        and statement.arg_name == "total_steps"):
      found = (statement.value, source)
  value, source = found or (None, None)
  if value is None or isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise errors.ConfigError(
        f"{where}: cannot read train.total_steps as an integer >= 1 from its gin files and "
        f"bindings (got {value!r}{' at ' + source if source else ''}); bind it as a number, "
        "e.g. study.gin_params = ['train.total_steps = 2000'].")
  return value


# ----------------------------------------------------------------------------------------
# Runs: their folders, commands and state.


def arm_config(study, arm):
  """What every run of `arm` is trained with, its seed aside: {"gin_files": [...],
  "gin_params": [...], "gin_file_digests": {path: sha256}} (the ARM_RECORD's content)."""
  return {"gin_files": list(arm.gin_files),
          "gin_params": list(study.gin_params + arm.gin_params)
                        + [f"train.eval_every = {study.eval_every}"],
          "gin_file_digests": dict(arm.gin_file_digests)}


def _gin_args(study, arm, seed):
  config = arm_config(study, arm)
  return ([f"--gin_file={path}" for path in config["gin_files"]]
          + [f"--gin_param={param}" for param in config["gin_params"]]
          + [f"--gin_param=train.seed = {seed}", f"--gin_param=ssgan.seed = {seed}"])


def check_arms(study, workdir):
  """Raises `arm_refusal`'s ConfigError for the first arm of `study` that has one."""
  for arm in study.arms:
    check_arm(study, arm, workdir)


def check_arm(study, arm, workdir):
  """Raises `arm_refusal`'s ConfigError, if `arm` has one."""
  refusal = arm_refusal(study, arm, workdir)
  if refusal:
    raise errors.ConfigError(refusal)


def arm_refusal(study, arm, workdir):
  """Why `arm`'s runs in `workdir` may not go on with the arm as the study now gives it
  (one line), or None: the gin files, their statements (`gin_file_digests`) or the
  bindings differ from its ARM_RECORD; bindings that only evaluate or locate data
  (`_trains`) may change. An arm without a record, or whose runs have not started
  (`_started`), passes, as do the files of a record made before digests were kept."""
  path = os.path.join(workdir, arm.name, ARM_RECORD)
  if not os.path.exists(path) or not _started(workdir, arm):
    return None
  with open(path) as f:
    recorded = json.load(f)
  changes = _changes(recorded, arm_config(study, arm))
  if changes:
    return (f"arm {arm.name!r} of {study.path} differs from the one its runs in "
            f"{os.path.join(workdir, arm.name)} were started with ({path}): "
            f"{'; '.join(changes)}; restore the arm in the study file, or pass a new "
            "--workdir (or give the changed arm a new name).")
  if "gin_file_digests" not in recorded:
    return None
  recorded_digests, digests = recorded["gin_file_digests"], dict(arm.gin_file_digests)
  edited = sorted(file for file in set(recorded_digests) | set(digests)
                  if recorded_digests.get(file) != digests.get(file))
  if edited:
    return (f"gin file {edited[0]} of arm {arm.name!r} has other settings than when the "
            f"arm's runs in {os.path.join(workdir, arm.name)} were started (recorded in "
            f"{path}); restore the file, or pass a new --workdir (or save the edited file "
            "under a new name for a new arm).")
  return None


def _normalized(config):
  """An ARM_RECORD dict with its paths normalized, the bindings that do not `_trains`
  left out and the spaces around each binding's first "=" folded, so that `a.b=1` and
  `a.b = 1` give the same arm."""
  return {"gin_files": [path if "://" in path else os.path.normpath(path)
                        for path in config.get("gin_files", [])],
          "gin_params": [" = ".join(side.strip() for side in param.split("=", 1))
                         for param in config.get("gin_params", [])
                         if all(_trains(statement) for statement in gin_files.statements(
                             param, f"binding {param!r}"))]}


def _changes(recorded, config):
  """What differs between two ARM_RECORD dicts: ["gin_params added ['x = 1']", ...]."""
  changes = []
  recorded, config = _normalized(recorded), _normalized(config)
  for key, now in config.items():
    before = recorded[key]
    if now != before:
      added = [x for x in now if x not in before]
      removed = [x for x in before if x not in now]
      parts = ([f"added {added}"] if added else []) + ([f"removed {removed}"] if removed else [])
      changes.append(f"{key} {' and '.join(parts) or 'reordered'}")
  return changes


def _started(workdir, arm):
  """Whether a run of `arm` in `workdir` (any seed, in the study or not) has begun
  training (its model_info.json, written before the first step, or a checkpoint): until
  then its config may still change, e.g. to fix a run that failed at start-up."""
  folder = os.path.join(workdir, arm.name)
  return any(name.startswith("seed") and (
      os.path.exists(os.path.join(folder, name, study_runs.MODEL_INFO))
      or study_runs.checkpoint_steps(os.path.join(folder, name)))
             for name in os.listdir(folder))


def record_arm(study, arm, workdir):
  """Writes `arm`'s ARM_RECORD before its runs start: where it has none, or none of its
  runs has begun training (`_started`)."""
  path = os.path.join(workdir, arm.name, ARM_RECORD)
  if not os.path.exists(path) or not _started(workdir, arm):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump(arm_config(study, arm), f, indent=2)


def command(study, workdir, arm, seed, mode="train", checkpoint=None, python=None):
  """The `python -m ssgan_tf.main` argv of one run (mode train, eval or probe)."""
  argv = [python or sys.executable, "-m", "ssgan_tf.main"]
  if mode != "train":
    argv += [f"--mode={mode}", f"--checkpoint={checkpoint}"]
  return argv + _gin_args(study, arm, seed) + [f"--workdir={run_dir(workdir, arm, seed)}"]


def probe_steps(study, arm):
  """The checkpoint steps to probe in `arm`'s runs, sorted."""
  return sorted({arm.total_steps if s == "final" else s for s in study.probe_steps})


def shell_commands(study, workdir):
  """One shell line per arm x seed: the training command (then its probes, with &&)."""
  lines = []
  for arm, seed in study.runs():
    parts = [command(study, workdir, arm, seed, python="python")]
    parts += [command(study, workdir, arm, seed, "probe", step, python="python")
              for step in probe_steps(study, arm)]
    lines.append(" && ".join(shlex.join(p) for p in parts))
  return lines


def pending(study, workdir, arm, seed):
  """The (mode, checkpoint) child processes the run still needs, in order."""
  state = run_state(workdir, arm, seed)
  todo = []
  if not state.trained:
    todo.append(("train", None))
  elif not state.evaluated:
    todo.append(("eval", state.step))
  for step in probe_steps(study, arm):
    if step not in state.probed:
      todo.append(("probe", step))
  return todo, state


# ----------------------------------------------------------------------------------------
# The runner.


class _Signals:
  """While installed, SIGTERM and SIGINT are recorded and forwarded to the child as
  SIGTERM (it saves its step and exits 75); the child has its own session, so a
  terminal's Ctrl-C reaches only the runner."""

  def __init__(self):
    self.received, self.child, self._previous = None, None, {}

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signal.Signals(signum).name
    if self.child is not None and self.child.poll() is None:
      self.child.send_signal(signal.SIGTERM)

  def __enter__(self):
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


def _say(message):
  print(message, flush=True)


def _last_error_line(path, status):
  """What ended the last child of log `path` (after its "=== " header): its `error:`
  line; else, if a signal killed it (status < 0), the signal; else its last line."""
  lines = []
  with open(path, errors="replace") as f:
    for line in f:
      if line.startswith(_CHILD_HEADER):
        lines = []
      elif line.strip():
        lines.append(line.strip())
  errors_ = [line for line in lines if line.startswith("error:")]
  if not errors_ and status < 0:
    try:
      return f"killed by {signal.Signals(-status).name}"
    except ValueError:  # A number without a name.
      return f"killed by signal {-status}"
  return (errors_ or lines or ["(no output)"])[-1]


def run_study(study, workdir, out=_say):
  """Runs what the study still needs, one child at a time, then writes the report.

  Returns:
    The report's dict (study_report.write: study_report.collect's, with its figures).

  Raises:
    errors.ConfigError: when an arm differs from its ARM_RECORD (`arm_refusal`): before
      anything runs, or before a run whose gin files were edited meanwhile.
    StudyInterrupted: on SIGTERM / SIGINT (exit 75) after the running child saved.
    errors.UserError: when a child failed (after the others ran and the report was written).
  """
  check_arms(study, workdir)
  os.makedirs(os.path.join(workdir, LOGS), exist_ok=True)
  copy = os.path.join(workdir, "study.gin")
  if not os.path.exists(copy):
    with open(study.path) as f, open(copy, "w") as g:
      g.write(f.read())
  runs = study.runs()
  start = time.perf_counter()
  failed = []
  out(f"study {study.name}: {len(study.arms)} arm(s) x {len(study.seeds)} seed(s) = "
      f"{len(runs)} runs in {workdir}")
  with _Signals() as signals:
    for index, (arm, seed) in enumerate(runs, 1):
      label = f"[{index}/{len(runs)}] {arm.name}/seed{seed}"
      todo, state = pending(study, workdir, arm, seed)
      if not todo:
        out(f"{label}: finished earlier (step {state.step}/{state.total_steps}), skipped")
        continue
      # Its files as the child will read them: edited since the study started, an arm
      # whose runs began is refused; one whose runs did not is recorded anew.
      arm = reread_arm(study, arm)
      check_arm(study, arm, workdir)
      record_arm(study, arm, workdir)
      todo, state = pending(study, workdir, arm, seed)
      run_start = time.perf_counter()
      for mode, checkpoint in todo:
        what = {"train": (f"training from step {state.step} to {state.total_steps}"
                          if state.step else f"training to step {state.total_steps}"),
                "eval": f"evaluating step {checkpoint} (its final evaluation is missing)",
                "probe": f"probing step {checkpoint}"}[mode]
        out(f"{label}: {what}; log {log_path(workdir, arm, seed)}")
        status = _run_child(study, workdir, arm, seed, mode, checkpoint, signals)
        if signals.received or status == errors.EXIT_CODE_PREEMPTED:
          out(f"{label}: stopped ({signals.received or 'the child was preempted'}) after "
              f"{study_runs.duration(time.perf_counter() - run_start)}")
          raise StudyInterrupted(
              f"stopped by {signals.received or 'a signal to the child'} during "
              f"{arm.name}/seed{seed} ({mode}; exit status {status}); run the same command "
              "again to resume.")
        if status != 0:
          message = _last_error_line(log_path(workdir, arm, seed), status)
          out(f"{label}: FAILED ({mode}, exit status {status}): {message}")
          failed.append(f"{arm.name}/seed{seed} ({mode}: {message})")
          break
      else:
        state = run_state(workdir, arm, seed)
        now = time.perf_counter()
        out(f"{label}: done in {study_runs.duration(now - run_start)} (step {state.step}/"
            f"{state.total_steps}; study {study_runs.duration(now - start)})")
  report = write_report(study, workdir, out)
  if failed:
    raise errors.UserError(f"{len(failed)} run(s) failed: {'; '.join(failed)}; see their logs "
                           f"in {os.path.join(workdir, LOGS)}; the report covers the others.")
  return report


def _run_child(study, workdir, arm, seed, mode, checkpoint, signals):
  argv = command(study, workdir, arm, seed, mode, checkpoint)
  log = log_path(workdir, arm, seed)
  started = datetime.datetime.now().astimezone()
  begin = time.perf_counter()
  with open(log, "a") as f:
    f.write(f"{_CHILD_HEADER}{started.isoformat(timespec='seconds')} {shlex.join(argv)}\n")
    f.flush()
    # Its own session: a terminal's Ctrl-C goes to the runner only, which forwards SIGTERM.
    signals.child = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
    if signals.received:  # A signal came while it was starting.
      signals.child.send_signal(signal.SIGTERM)
    try:
      status = signals.child.wait()
    finally:
      if signals.child.poll() is None:  # The runner itself is dying: don't orphan it.
        signals.child.send_signal(signal.SIGTERM)
        signals.child.wait()
      signals.child = None
  entry = {"arm": arm.name, "seed": seed, "mode": mode, "checkpoint": checkpoint,
           "started": started.isoformat(timespec="seconds"),
           "seconds": round(time.perf_counter() - begin, 2), "exit_status": status}
  with open(os.path.join(workdir, STUDY_LOG), "a") as f:
    f.write(json.dumps(entry) + "\n")
  return status


def write_report(study, workdir, out=_say):
  report = study_report.write(study, workdir)
  out(f"report: {os.path.join(workdir, 'report.md')} ({report['finished_runs']} of "
      f"{len(study.runs())} runs finished)")
  if report["headline_note"]:
    out(f"warning: {report['headline_note']}")
  for metrics, by_classifier in study_report.group_mixed(report["mixed_classifiers"]):
    out(f"warning: {', '.join(metrics)} from different classifiers "
        f"({', '.join(by_classifier)}): not comparable; report.md names the runs to "
        "re-evaluate.")
  return report


def finishing_commands(study, workdir):
  """Shell lines for the trained runs that still miss their final evaluation or a probe
  (what the runner would run for them; a training command finds nothing to do there)."""
  lines = []
  for arm, seed in study.runs():
    todo, state = pending(study, workdir, arm, seed)
    if state.trained and todo:
      lines.append(" && ".join(
          shlex.join(command(study, workdir, arm, seed, mode, step, python="python"))
          for mode, step in todo))
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m ssgan_tf.study",
      description="Train every arm x seed of a study (ordinary ssgan_tf.main runs) and "
                  "write report.md / report.json with curves and sample grids.",
      epilog="Exit status: 0 done (report written); 1 a bad study file or a failed run "
             "(its log is named; the report covers the others); 75 stopped by SIGTERM or "
             "Ctrl-C after the running child saved (run the same command again). The "
             "study file's format: studies/README.md.")
  parser.add_argument("--study", required=True, help="the study file (gin syntax, "
                      "study.*); the arms' gin file paths are relative to the working "
                      "directory")
  parser.add_argument("--workdir", required=True, help="the study's folder: "
                      "<workdir>/<arm>/seed<k> are the runs")
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--print_commands", action="store_true",
                     help="print one shell command per arm x seed (training, then its "
                     "probes) for a job scheduler; runs nothing (records the arms' "
                     "configs in the workdir)")
  group.add_argument("--aggregate_only", action="store_true",
                     help="run nothing: write the report from what the workdir holds")
  args = parser.parse_args(argv)
  with errors.user_errors_as_one_line():
    study = load_study(args.study)
    if args.print_commands:
      # The printed commands start runs: their arms are held to this config, as the
      # runner's are.
      check_arms(study, args.workdir)
      for arm in study.arms:
        record_arm(study, arm, args.workdir)
      lines = shell_commands(study, args.workdir)
      print(f"# {len(lines)} commands, one per arm x seed (seed by seed); when they are done: "
            f"python -m ssgan_tf.study --study={shlex.quote(args.study)} "
            f"--workdir={shlex.quote(args.workdir)} --aggregate_only", file=sys.stderr)
      _print_to_a_pipe("\n".join(lines))
    elif args.aggregate_only:
      if not os.path.isdir(args.workdir):
        raise errors.WorkdirError(f"--workdir {args.workdir!r} does not exist; run the "
                                  "study (or its --print_commands) first.")
      check_arms(study, args.workdir)
      write_report(study, args.workdir)
      finishing = finishing_commands(study, args.workdir)
      if finishing:
        _say(f"{len(finishing)} trained run(s) miss their final evaluation or a probe; "
             "these commands (or the runner) finish them:")
        _print_to_a_pipe("\n".join(finishing))
    else:
      run_study(study, args.workdir)


def _print_to_a_pipe(text):
  """Prints `text`; a reader that stopped early (`| head`) ends the output quietly, as
  Python's docs advise (stdout pointed at /dev/null, so the exit's flush cannot fail)."""
  try:
    print(text, flush=True)
  except BrokenPipeError:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


def cli():
  """The `ssgan-tf-study` console command (pyproject.toml)."""
  main()


if __name__ == "__main__":
  cli()
