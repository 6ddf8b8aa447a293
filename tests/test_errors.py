"""errors.py: range checks name the binding and the allowed range; command-line programs
print user errors as one line and let every other exception keep its traceback."""

import pytest

from ssgan_tf import errors


@pytest.mark.parametrize("value, kwargs, message", [
    (0, {"minimum": 1, "integer": True}, "train.x must be >= 1; got 0."),
    ("abc", {"minimum": 1, "integer": True}, "train.x must be an integer; got 'abc'."),
    (2.5, {"minimum": 1, "integer": True}, "train.x must be an integer; got 2.5."),
    (True, {"minimum": 0, "integer": True}, "train.x must be an integer; got True."),
    (0.0, {"minimum": 0, "exclusive_minimum": True}, "train.x must be > 0; got 0.0."),
    (float("nan"), {"minimum": 0}, "train.x must be a number; got nan."),
    (1.5, {"minimum": 0, "maximum": 1}, "train.x must be >= 0 and <= 1; got 1.5."),
])
def test_check_range_names_the_binding_and_the_range(value, kwargs, message):
  with pytest.raises(errors.ConfigError) as error:
    errors.check_range("train.x", value, **kwargs)
  assert str(error.value) == message


def test_check_range_returns_good_values():
  assert errors.check_range("a", 3, minimum=1, integer=True) == 3
  assert errors.check_range("a", 1e-4, minimum=0, exclusive_minimum=True) == 1e-4
  assert errors.check_range("a", 1, minimum=0, maximum=1) == 1


def test_a_user_error_becomes_one_line_and_exit_status_1(capsys):
  with pytest.raises(SystemExit) as exit_info:
    with errors.user_errors_as_one_line():
      raise errors.WorkdirError("workdir 'w' is locked; wait.\n  In call to configurable")
  assert exit_info.value.code == 1
  assert capsys.readouterr().err == "error: workdir 'w' is locked; wait.\n"


@pytest.mark.parametrize("bug", [KeyError("k"), ValueError("shape mismatch"), TypeError("t")])
def test_any_other_exception_passes_through_unchanged(bug, capsys):
  with pytest.raises(type(bug)) as raised:
    with errors.user_errors_as_one_line():
      raise bug
  assert raised.value is bug
  assert capsys.readouterr().err == ""
