"""conlleval entity F1 on hand-made sequences (spans worked out by hand from the definition)."""

import pytest

from recurrent.tasks.ner import chunks, entity_f1


def test_chunks_follow_conlleval_rules():
  assert chunks(["B-per", "I-per", "O", "B-loc"]) == {(0, 2, "per"), (3, 4, "loc")}
  assert chunks(["I-per", "I-per", "O"]) == {(0, 2, "per")}          # I- after O (or at the start) begins
  assert chunks(["B-per", "I-loc", "I-loc"]) == {(0, 1, "per"), (1, 3, "loc")}  # a type change begins
  assert chunks(["B-per", "B-per", "I-per"]) == {(0, 1, "per"), (1, 3, "per")}  # B- always begins
  assert chunks(["O", "O"]) == set() and chunks([]) == set()
  assert chunks(["O", "B-group", "I-group", "I-group"]) == {(1, 4, "group")}   # runs to the end
  assert chunks(["B-creative-work", "I-creative-work"]) == {(0, 2, "creative-work")}
  with pytest.raises(ValueError, match=r"tags\[1\]"):
    chunks(["O", "X-per"])
  with pytest.raises(ValueError, match=r"tags\[0\]"):
    chunks(["B"])


def test_entity_f1_exact_match_pooled_over_sentences():
  # The seqeval README example (conlleval definition): one of two gold entities found exactly,
  # the MISC span off by one token counts as wrong -> P = R = F1 = 1/2.
  gold = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
  pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
  assert entity_f1(gold, pred) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
  # 3 gold entities, 2 predicted, 1 right (a wrong type is wrong): P = 1/2, R = 1/3, F1 = 2/5.
  gold = [["B-per", "I-per", "O", "B-loc"], ["B-group", "O"]]
  pred = [["B-per", "I-per", "O", "B-per"], ["O", "O"]]
  m = entity_f1(gold, pred)
  assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 3)
  assert m["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
  # No predictions (or no gold entities): 0, not a division by zero.
  assert entity_f1([["B-per"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
  assert entity_f1([["O"]], [["O"]])["f1"] == 0.0
  with pytest.raises(ValueError, match=r"pred\[0\]"):
    entity_f1([["O", "O"]], [["O"]])
