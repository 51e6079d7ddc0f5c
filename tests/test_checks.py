"""recurrent.checks.check_int, the one integer check: types, bounds, and the message it writes.

Then a few of the places that used to write the check themselves without refusing a bool
(``True`` is an int in Python, so ``num_processes=True`` ran as 1 process).
"""

import ml_collections
import numpy as np
import pytest

from recurrent.checks import check_int
from recurrent.training import distributed, launcher, optim


@pytest.mark.parametrize("value, least, below", [
    (1, 1, None), (0, 0, None), (7, 1, None), (-3, -3, 3), (2, -3, 3),
    (np.int64(1), 1, None), (np.int32(0), 0, None)])
def test_integers_in_range_pass(value, least, below):
  check_int("x", value, least, below=below)


@pytest.mark.parametrize("value, least, below, got", [
    (True, 1, None, "True"), (False, 0, None, "False"), (np.bool_(True), 1, None, None),
    (1.0, 1, None, "1.0"), (2.5, 1, None, "2.5"), ("3", 1, None, "'3'"), (None, 0, None, "None"),
    (0, 1, None, "0"), (-1, 0, None, "-1"), (3, -3, 3, "3"), (-4, -3, 3, "-4")])
def test_everything_else_fails_naming_the_field_the_range_and_the_value(value, least, below, got):
  expected = f">= {least}" if below is None else f"in [{least}, {below})"
  with pytest.raises(ValueError) as e:
    check_int("task.epochs", value, least, below=below)
  got = repr(value) if got is None else got   # NumPy's bool: "True" before NumPy 2, "np.True_" after
  assert str(e.value) == f"task.epochs: must be an integer {expected}, got {got}"


def test_a_note_goes_in_parentheses_after_the_range():
  with pytest.raises(ValueError) as e:
    check_int("top_k", -1, 0, note="0 keeps every token")
  assert str(e.value) == "top_k: must be an integer >= 0 (0 keeps every token), got -1"
  with pytest.raises(ValueError) as e:
    check_int("layer", 2, -2, below=2, note="hidden_sizes has 2 layers")
  assert str(e.value) == "layer: must be an integer in [-2, 2) (hidden_sizes has 2 layers), got 2"


def test_counts_that_used_to_accept_a_bool_refuse_it():
  with pytest.raises(ValueError, match=r"^num_processes: must be an integer >= 1, got True$"):
    launcher.launch(["true"], num_processes=True)
  with pytest.raises(ValueError, match=r"^num_processes: must be an integer >= 1 \(required with "):
    distributed.check_topology("127.0.0.1:1234", True, 0)
  with pytest.raises(ValueError, match=r"^distributed_timeout: must be an integer >= 1 \(seconds\), "
                                       r"got True$"):
    distributed.initialize("127.0.0.1:1234", 2, 0, timeout_s=True)
  section = ml_collections.ConfigDict({"learning_rate": 1.0, "schedule": "epoch_decay",
                                       "steps_per_epoch": True, "decay_after_epochs": 2,
                                       "decay_rate": 0.5})
  with pytest.raises(ValueError, match=r"^optim\.steps_per_epoch: must be an integer >= 1 \(the "
                                       r"epoch_decay schedule needs it\), got True$"):
    optim.make_schedule(section, 100)
