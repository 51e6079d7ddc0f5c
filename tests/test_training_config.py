"""Config files and --config.FIELD overrides: what passes, and the errors for what does not."""

import pytest
from absl import flags
from ml_collections import config_flags

from configs import sine
from recurrent.training import loop


def parse(*args):
  fv = flags.FlagValues()
  argv = ["prog", *args]
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  fv(argv)
  return fv.config


def test_overrides_reach_the_config():
  c = parse("--config=configs/sine.py:smoke", "--config.optim.learning_rate=0.05",
            "--config.model.cell=gru", "--config.num_steps=9", "--config.model.hidden_sizes=(4,5)")
  assert c.optim.learning_rate == 0.05 and c.model.cell == "gru" and c.num_steps == 9
  assert tuple(c.model.hidden_sizes) == (4, 5)
  assert c.batch_size == 8  # the smoke variant was applied


@pytest.mark.parametrize("arg, match", [
    ("--config.optim.learnig_rate=0.1", "learnig_rate"),        # misspelled field
    ("--config.nonexistent=1", "nonexistent"),
    ("--config.num_steps=ten", "num_steps"),                    # wrong type
    ("--config.batch_size=1.5", "batch_size"),
])
def test_bad_overrides_fail_naming_the_field(arg, match):
  with pytest.raises(Exception, match=match):
    parse("--config=configs/sine.py", arg)


def test_unknown_variant_fails_listing_the_valid_ones():
  with pytest.raises(ValueError, match=r"unknown variant 'smok'.*\['smoke'\]"):
    sine.get_config("smok")


def test_config_is_locked():
  c = sine.get_config()
  with pytest.raises(AttributeError):
    c.optim.learnig_rate = 0.1


def test_config_diff_names_every_changed_field():
  a = loop.config_to_dict(sine.get_config())
  c = sine.get_config()
  c.num_steps = 5
  c.model.hidden_sizes = (3,)
  assert loop.config_diff(a, loop.config_to_dict(c)) == ["model.hidden_sizes", "num_steps"]
  assert loop.config_diff(a, a) == []


def test_load_config_round_trips(tmp_path):
  c = sine.get_config("smoke")
  loop.write_or_check_config(c, tmp_path)
  back = loop.load_config(tmp_path)
  assert loop.config_diff(loop.config_to_dict(c), loop.config_to_dict(back)) == []
  with pytest.raises(AttributeError):
    back.typo = 1
