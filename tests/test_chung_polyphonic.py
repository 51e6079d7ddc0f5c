"""configs/chung_polyphonic.py (Chung et al. 2014 on four polyphonic sets): its sizes and sweep, a smoke run
through the harness whose best-checkpoint test NLL is recomputed from the checkpoint, and the seed table."""

import json

import jax
import numpy as np
import pytest

from configs import chung_polyphonic
from experiments import polyphonic_curves, results_table
from recurrent.training import results
from recurrent.data import music
from recurrent.tasks import music as music_task
from recurrent.training import loop
from test_music import make_rolls, write_mat


@pytest.mark.parametrize("cell, units", [("rnn", 100), ("gru", 46), ("lstm", 36)])
def test_cells_have_the_papers_unit_counts_and_about_20k_parameters(cell, units):
  config = chung_polyphonic.get_config(f"cell={cell}")
  assert config.model.cell == chung_polyphonic.CELLS[cell] and config.model.hidden_sizes == (units,)
  task = music_task.make_task(config, make_rolls(3, counts=(8, 2, 2)))
  n = sum(x.size for x in jax.tree.leaves(jax.eval_shape(task.init_params, jax.random.key(0))))
  # Counted by hand (input, recurrent, bias per gate block; then the 88-way sigmoid output layer):
  # the GRU also stores b_hn, unused (zero, no gradient) in the reset-before form; the LSTM has
  # three diagonal peephole vectors (Chung et al. write V_i, V_f, V_o c as Graves 2013 does)
  gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
  extra = {"rnn": 0, "gru": units, "lstm": 3 * units}[cell]
  assert n == gates * (88 * units + units * units + units) + extra + units * 88 + 88
  assert 20_000 < n < 28_000


def test_dataset_variant_sets_windows_budget_and_evaluations():
  for ds in music.DATASETS:
    c = chung_polyphonic.get_config(f"dataset={ds},cell=gru")
    assert c.task.dataset == ds and c.num_steps == chung_polyphonic.STEPS[ds]
    assert c.task.train_crop == (0 if ds == "jsb" else 200)  # the long pieces train on windows
    assert c.num_steps // c.eval_every == chung_polyphonic.EVALS and c.checkpoint_every == c.eval_every
    assert c.optim.name == "rmsprop" and c.optim.clip_norm == 1.0
  c = chung_polyphonic.get_config("dataset=musedata")
  c.num_steps = 10_000                  # --config.num_steps=10000: the evaluations follow it
  assert (c.eval_every, c.checkpoint_every, c.log_every) == (2000, 2000, 1000)
  c.eval_every = 500                    # set by hand: only that one changes
  assert (c.eval_every, c.checkpoint_every) == (500, 2000)
  points = chung_polyphonic.get_sweep()
  assert len(points) == 9 and {(p["model.cell"], p["model.hidden_sizes"][0]) for p in points} == {
      ("rnn", 100), ("gru_reset_before", 46), ("lstm:peephole=true", 36)}
  assert sorted({p["seed"] for p in points}) == [0, 1, 2]
  with pytest.raises(ValueError, match="dataset"):
    chung_polyphonic.get_config("dataset=bach")


def test_smoke_trains_through_the_harness_and_the_table_reads_the_best_checkpoint(tmp_path):
  rolls = make_rolls(6, counts=(9, 4, 5), max_len=40)
  write_mat(tmp_path / "data" / music.DATASETS["piano"], rolls)
  config = chung_polyphonic.get_config("dataset=piano,cell=gru,smoke")
  config.task.data_dir = str(tmp_path / "data")
  config.task.train_crop = 8  # windows shorter than the pieces, as on the real set
  run = tmp_path / "run"
  final = loop.train_and_evaluate(config, run)
  evals = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
  assert [e["step"] for e in evals] == [3, 6]
  best = min(evals, key=lambda e: e["loss"])
  assert final["best_step"] == best["step"]
  # The table's row is the best step's eval row; restoring that checkpoint gives the same test NLL.
  row = results.best_row(run)
  assert row["test_nll"] == best["test_nll"] and row["task.dataset"] == "piano"
  again = loop.evaluate(config, run, "best")
  assert again["step"] == best["step"]
  np.testing.assert_allclose(again["test_nll"], best["test_nll"], rtol=1e-5)
  runs = polyphonic_curves.load_runs(str(run))
  assert runs[0]["steps"] == [3, 6] and runs[0]["best_step"] == best["step"]


def test_group_rows_mean_and_sample_std_over_seeds():
  rows = [{"task.dataset": "jsb", "model.cell": c, "seed": s, "test_nll": v, "opt": "rmsprop"}
          for c, vals in (("gru", (8.0, 8.5, 9.5)), ("rnn", (9.0,))) for s, v in enumerate(vals)]
  rows.insert(1, None)  # an unfinished run is left out
  rows[2] = {**rows[2], "opt": "adam"}
  out = results.group_rows(rows, ["task.dataset", "model.cell"], ["test_nll", "opt", "seed"])
  assert [(r["model.cell"], r["runs"]) for r in out] == [("gru", 3), ("rnn", 1)]
  mean, std = out[0]["test_nll"]
  assert mean == pytest.approx(26.0 / 3)
  assert std == pytest.approx(np.sqrt(((8 - 26 / 3) ** 2 + (8.5 - 26 / 3) ** 2 + (9.5 - 26 / 3) ** 2) / 2))
  assert out[1]["test_nll"] == (9.0, None) and results_table.fmt(out[1]["test_nll"]) == "9"
  assert out[0]["opt"] == ["adam", "rmsprop"] and out[1]["opt"] == "rmsprop"
  assert results_table.fmt((8.6667, 0.7638)) == "8.667 ± 0.76" and results_table.fmt((3000.0, 0.0)) == "3000"


def test_wall_seconds_from_absl_timestamps(tmp_path):
  log = tmp_path / "train.log"
  log.write_text("I1231 23:59:50.500000 1 loop.py:1] start\nnot a log line\n"
                 "W0101 00:01:00.000000 1 loop.py:2] end\n")
  assert results.wall_seconds(log) == pytest.approx(69.5)  # over New Year: absl writes no year
  log.write_text("I1202 19:26:22.047404 1 a] x\nI1202 19:27:10.084646 1 b] y\n")
  assert results.wall_seconds(log) == pytest.approx(48.037242)
  assert results.wall_seconds(tmp_path / "none.log") is None
  # A resumed run: two processes (thread ids 7 and 9) an hour apart, and another thread (8) of the
  # first one logging inside its span: 10 s + 5 s, not the 3,615 s from the first line to the last.
  log.write_text("I1203 08:00:00.0 7 a] start\nI1203 08:00:04.0 8 orbax] saved\n"
                 "I1203 08:00:10.0 7 b] killed here\nI1203 09:00:10.0 9 a] start\n"
                 "I1203 09:00:15.0 9 b] done\n")
  assert results.wall_seconds(log) == pytest.approx(15.0)
