"""A study's workdir, read without TensorFlow: where each run's folder and log are, and
what a run folder holds (the runner decides what to start from it, the report reads it).

  <workdir>/<arm>/seed<k>/     a run's training workdir (workdir.py's layout, of which
                               the names below are copies: this module imports no TF)
  <workdir>/logs/<arm>.seed<k>.log   every child process's output for that run, appended
  <workdir>/study_log.jsonl    the runner's record: one line per child process
"""

import dataclasses
import json
import os
import re

from ssgan_tf import workdir_lock

# As in workdir.py, checkpoints.py and evaluation/probe.py (tests/test_study.py checks they
# agree).
MODEL_INFO = "model_info.json"
MINIMAL_RECORD_KEYS = ("step", "metric", "value")  # evaluation/records.py's
CHECKPOINTS = "checkpoints"
CHECKPOINT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
METRICS = "metrics.jsonl"
SAMPLES = "samples"
SAMPLE_GRID = re.compile(r"^fakes_(\d+)\.png$")
PROBE_PREFIX = "probe_"  # Probe records' metric names (evaluation/probe.py METRIC_PREFIX).

STUDY_LOG = "study_log.jsonl"  # The runner's: one line per child process.
LOGS = "logs"  # The runner's: every child's output, a file per run.
STUDY_COPY = "study.gin"  # The runner's copy of the study file.
REPORT_MD = "report.md"  # study_report.py writes it and the rest of REPORT_FILES.
REPORT_FILES = (REPORT_MD, "report.json", "curves.png", "probe.png", "samples.png")
# Beside the arms' folders: no arm may be named so.
OWN_NAMES = (STUDY_LOG, LOGS, STUDY_COPY, workdir_lock.LOCK_NAME) + REPORT_FILES


def run_dir(workdir, arm, seed):
  """The training workdir of `arm` (anything with .name) and `seed`."""
  return os.path.join(workdir, arm.name, f"seed{seed}")


def log_path(workdir, arm, seed):
  """The runner's log of `arm`'s run with `seed`: every child's output, appended."""
  return os.path.join(workdir, LOGS, f"{arm.name}.seed{seed}.log")


def checkpoint_steps(path):
  """The steps of the readable-looking checkpoints of run folder `path`, sorted."""
  folder = os.path.join(path, CHECKPOINTS)
  if not os.path.isdir(folder):
    return []
  return sorted(int(m.group(1)) for m in map(CHECKPOINT_INDEX.match, os.listdir(folder)) if m)


def read_records(path):
  """The metric records of run folder `path` (its metrics.jsonl, `read_jsonl`)."""
  return read_jsonl(os.path.join(path, METRICS), MINIMAL_RECORD_KEYS)


def read_jsonl(path, keys):
  """The dicts with `keys` of JSON-lines file `path`, in order ([] if it is missing); a
  line that is not one (torn by a process killed mid-write, other bytes after a host
  crash) is left out."""
  found = []
  if os.path.exists(path):
    with open(path, encoding="utf-8", errors="replace") as f:
      for line in f:
        try:
          entry = json.loads(line)
        except json.JSONDecodeError:
          continue
        if isinstance(entry, dict) and all(key in entry for key in keys):
          found.append(entry)
  return found


@dataclasses.dataclass
class RunState:
  """What a run folder holds.

  Attributes:
    step: its latest checkpoint's step (0: none).
    total_steps: the arm's train.total_steps.
    evaluated: whether a sample-metric record exists at `step`.
    probed: checkpoint steps with a probe record.
  """
  step: int
  total_steps: int
  evaluated: bool
  probed: set

  @property
  def trained(self):
    return self.step >= self.total_steps

  @property
  def finished(self):
    """Trained and evaluated at its last step: it counts in the report."""
    return self.trained and self.evaluated


def run_state(workdir, arm, seed):
  """The `RunState` of one run (arm: a study.Arm)."""
  path = run_dir(workdir, arm, seed)
  steps = checkpoint_steps(path)
  step = steps[-1] if steps else 0
  records = read_records(path)
  evaluated = any(r.get("step") == step and not str(r.get("metric")).startswith(PROBE_PREFIX)
                  for r in records)
  probed = {r.get("step") for r in records if str(r.get("metric")).startswith(PROBE_PREFIX)}
  return RunState(step, arm.total_steps, evaluated, probed)


def duration(seconds):
  """65.2 -> "1m05s"; 3725 -> "1h02m05s"."""
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"
