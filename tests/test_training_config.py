"""Config files and --config.FIELD overrides: what passes, and the errors for what does not."""

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags

from configs import base, gradient_decay, horizon_sweep, sine
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


def test_an_epochs_override_moves_num_steps_unless_num_steps_is_set():
  ten = parse("--config=configs/case_correction.py")
  per_epoch = ten.num_steps // ten.task.epochs
  assert parse("--config=configs/case_correction.py", "--config.task.epochs=3").num_steps == 3 * per_epoch
  assert parse("--config=configs/case_correction.py", "--config.task.epochs=3",
               "--config.num_steps=7").num_steps == 7


def test_case_correction_steps_follow_batch_crop_and_train_bytes_overrides():
  """ceil(N / (B * (min_len + max_len) / 2)) steps per epoch for the N = 506,211 training bytes
  (288 at B = 32 and crops of 10..100 bytes); before, B = 32 and the mean crop of 55 were written
  into the config, so an override of either left num_steps and the once-per-epoch cadences."""
  c = parse("--config=configs/case_correction.py")
  assert (c.num_steps, c.eval_every, c.checkpoint_every) == (10 * 288, 288, 288)
  c = parse("--config=configs/case_correction.py", "--config.batch_size=64")        # 506211 / 3520
  assert (c.num_steps, c.eval_every, c.checkpoint_every) == (10 * 144, 144, 144)
  c = parse("--config=configs/case_correction.py", "--config.task.max_len=20")      # 506211 / 480
  assert (c.num_steps, c.eval_every, c.checkpoint_every) == (10 * 1055, 1055, 1055)
  c = parse("--config=configs/case_correction.py", "--config.task.train_bytes=17600",
            "--config.task.epochs=2")                                               # 17600 / 1760
  assert (c.num_steps, c.eval_every, c.checkpoint_every) == (2 * 10, 10, 10)
  c = parse("--config=configs/case_correction.py", "--config.batch_size=64", "--config.eval_every=7")
  assert (c.num_steps, c.eval_every, c.checkpoint_every) == (10 * 144, 7, 144)


@pytest.mark.parametrize("arg, match", [
    ("--config.batch_size=0", r"^batch_size: must be an integer >= 1, got 0$"),
    ("--config.task.min_len=0", r"^task\.min_len: must be an integer >= 1, got 0$"),
    ("--config.task.train_bytes=-1", r"^task\.train_bytes: must be an integer >= 0, got -1$"),
])
def test_a_bad_case_correction_batch_or_crop_fails_naming_it_where_num_steps_is_read(arg, match):
  config = parse("--config=configs/case_correction.py", arg)
  with pytest.raises(ValueError, match=match):
    loop.check_config(config)


LAB_OPTIM = {"name": "adam", "learning_rate": 3e-3, "schedule": "constant", "warmup_steps": 0,
             "momentum": 0.0, "weight_decay": 0.0, "clip_value": 0.0}


@pytest.mark.parametrize("config, want", [
    (base.base_config(), dict(LAB_OPTIM, learning_rate=1e-3, decay_steps=0, clip_norm=0.0)),
    (gradient_decay.get_config(), LAB_OPTIM),                      # clip_norm is set per run
    (gradient_decay.get_config("exploding"), dict(LAB_OPTIM, name="sgd", learning_rate=0.05)),
    (horizon_sweep.get_config(), dict(LAB_OPTIM, clip_norm=1.0)),
    (horizon_sweep.get_config("lstm200"), dict(LAB_OPTIM, clip_norm=0.0)),
], ids=["base", "gradient_decay", "gradient_decay:exploding", "horizon_sweep", "horizon_sweep:lstm200"])
def test_optim_sections_from_the_one_helper_are_what_they_were(config, want):
  """base.optim_config builds all three; the values (and which fields exist) are the ones each
  config wrote out itself before."""
  assert config.optim.to_dict() == want


def test_ptb_steps_follow_epochs_batch_and_window_overrides():
  """(N // B - 1) // T windows per epoch for PTB's N = 929,589 training tokens (Zaremba et al.'s 2323
  at B = T = 20); before, an override of task.epochs or batch_size left num_steps where it was."""
  small = parse("--config=configs/ptb.py")
  assert (small.optim.steps_per_epoch, small.num_steps, small.eval_every) == (2323, 13 * 2323, 2323)
  c = parse("--config=configs/ptb.py", "--config.task.epochs=3", "--config.batch_size=40")
  assert (c.optim.steps_per_epoch, c.num_steps, c.eval_every) == (1161, 3 * 1161, 1161)
  c = parse("--config=configs/ptb.py:size=medium", "--config.task.seq_len=10", "--config.eval_every=7")
  assert (c.optim.steps_per_epoch, c.num_steps, c.eval_every) == (4647, 39 * 4647, 7)
  c = parse("--config=configs/ptb.py", "--config.num_steps=5")
  assert (c.optim.steps_per_epoch, c.num_steps) == (2323, 5)


@pytest.mark.parametrize("arg, match", [
    ("--config.task.epochs=0", r"^task\.epochs: must be an integer >= 1, got 0$"),
    ("--config.task.epochs=-2", r"^task\.epochs: must be an integer >= 1, got -2$"),
    ("--config.batch_size=0", r"^batch_size: must be an integer >= 1, got 0$"),
    ("--config.task.seq_len=-1", r"^task\.seq_len: must be an integer >= 1, got -1$"),
    ("--config.batch_size=1000000", r"^batch_size, task\.seq_len: 1000000 streams of the "
                                    r"929589-token ptb training split hold no full window"),
])
def test_a_bad_ptb_epochs_batch_or_window_fails_naming_it_where_num_steps_is_read(arg, match):
  """Not as "num_steps: must be an integer >= 1, got 0" or a ZeroDivisionError."""
  config = parse("--config=configs/ptb.py", arg)
  with pytest.raises(ValueError, match=match):
    loop.check_config(config)   # the trainer's first read of num_steps
  with pytest.raises(ValueError, match=match):
    loop.config_to_dict(config)  # and config.json's


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


def variants_config():
  """A tiny base config with one flag and one choice that write separate fields, and a smoke step."""
  config = base.base_config()
  config.model.pooling = "last"
  config.task.eval_batch_size = 100
  flags = {"bidirectional": base.set_to("model.bidirectional", True)}
  choices = {"pooling": base.choice_of("model.pooling", ["last", "max"])}
  smoke = [lambda c: setattr(c.task, "eval_batch_size", 4)]
  return config, dict(flags=flags, choices=choices, smoke=smoke)


def test_finalize_applies_flags_choices_and_smoke():
  config, variants = variants_config()
  c = base.finalize(config, "pooling=max,bidirectional", **variants)
  assert c.model.pooling == "max" and c.model.bidirectional and c.batch_size == 32
  assert c.task.eval_batch_size == 100                         # no smoke asked
  config, variants = variants_config()
  c = base.finalize(config, "smoke,pooling=max", **variants)
  assert c.model.pooling == "max" and not c.model.bidirectional
  assert (c.batch_size, c.num_steps, c.task.eval_batch_size) == (8, 6, 4)  # base smoke, then the config's
  config, variants = variants_config()
  assert base.finalize(config, None, **variants).model.pooling == "last"
  with pytest.raises(AttributeError):                            # locked
    c.typo = 1


def test_smoke_applies_after_the_other_variants_and_the_last_choice_wins():
  config = base.base_config()
  choices = {"width": base.Choice(("64", "256"), lambda c, v: setattr(c.model, "hidden_sizes", (int(v),)))}
  c = base.finalize(config, "width=64,smoke,width=256", choices=choices)
  assert c.model.hidden_sizes == (16,)                           # smoke shrank the 256 set after it


@pytest.mark.parametrize("arg, match", [
    ("bidi", r"unknown variant 'bidi'; this config knows \['pooling=last\|max', 'bidirectional', 'smoke'\]"),
    ("pooling=mean", r"unknown pooling 'mean' in 'pooling=mean'; pooling must be one of \['last', 'max'\]"),
    ("pooling", r"unknown pooling ''"),
    ("smoke=yes", r"'smoke' takes no value, got 'smoke=yes'"),
    ("bidirectional,nope", r"unknown variant 'nope'"),
])
def test_bad_variants_fail_before_any_is_applied(arg, match):
  config, variants = variants_config()
  with pytest.raises(ValueError, match=match):
    base.finalize(config, arg, **variants)
  assert not config.model.bidirectional and config.model.pooling == "last"


def test_apply_variants_without_base_smoke():
  config = ml_collections.ConfigDict({"steps": 100, "cells": ("rnn",)})
  flags = {"smoke": lambda c: setattr(c, "steps", 2), "two": lambda c: setattr(c, "cells", ("rnn", "gru"))}
  base.apply_variants(config, "smoke,two", flags=flags)
  assert config.steps == 2 and config.cells == ("rnn", "gru")
  with pytest.raises(ValueError, match="both flags and choices"):
    base.apply_variants(config, "", flags=flags, choices={"two": base.Choice(("a",), print)})


def test_a_restart_that_raises_num_steps_keeps_the_schedule_length(tmp_path):
  import json

  from recurrent.training.workdir import schedule_steps
  old = {"num_steps": 100, "optim": {"schedule": "cosine", "decay_steps": 0}}
  (tmp_path / "config.json").write_text(json.dumps(old))
  new = {"num_steps": 200, "optim": {"schedule": "cosine", "decay_steps": 0}}
  assert schedule_steps(new, tmp_path, has_checkpoint=True) == 100      # the rate of planned steps kept
  assert schedule_steps(new, tmp_path, has_checkpoint=False) == 200     # no checkpoint: a new run
  assert schedule_steps({**new, "optim": {"schedule": "cosine", "decay_steps": 150}}, tmp_path,
                        has_checkpoint=True) == 150
  assert schedule_steps({**new, "optim": {"schedule": "constant", "decay_steps": 0}}, tmp_path,
                        has_checkpoint=True) == 200
