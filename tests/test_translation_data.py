"""The translation data module on a small file the test writes itself."""

import pytest

from recurrent.data import translation as tr

LINES = [
    "Go.\tVa !",
    "Help!\tÀ l'aide\u202f!",
    "I see.\tJe comprends.",
    "I see.\tJe vois.",
    "Stop!\tArrête-toi\u00a0!",
    "It costs 1\u2009000 euros.\tÇa coûte 1\u2009000 euros.",
    "This sentence is far too long to be kept at all.\tCette phrase est beaucoup trop longue pour être gardée.",
] + [f"Word {i}.\tMot {i}." for i in range(40)]


@pytest.fixture
def fra_file(tmp_path):
  p = tmp_path / "eng_fra_tatoeba" / "fra.txt"
  p.parent.mkdir()
  p.write_text("\n".join(LINES) + "\n", encoding="utf-8")
  return p


def test_normalise_and_tokenize():
  assert tr.normalise("À l'aide\u202f!") == "à l'aide !"
  assert tr.tokenize("À l'aide\u202f!") == ["à", "l", "'", "aide", "!"]
  assert tr.tokenize("Arrête-toi\u00a0!") == ["arrête", "-", "toi", "!"]
  assert tr.tokenize("1\u2009000") == ["1", "000"]


def test_read_pairs_from_a_file_or_a_folder(fra_file, monkeypatch):
  pairs = tr.read_pairs(fra_file)
  assert pairs[1] == ("Help!", "À l'aide\u202f!") and len(pairs) == len(LINES)
  assert tr.read_pairs(fra_file.parent.parent) == pairs
  monkeypatch.setenv("RECURRENT_DATA_DIR", str(fra_file.parent.parent))
  assert tr.read_pairs() == pairs


def test_missing_file_names_the_file(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match="eng_fra_tatoeba/fra.txt"):
    tr.read_pairs(tmp_path)
  monkeypatch.delenv("RECURRENT_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="RECURRENT_DATA_DIR"):
    tr.read_pairs()


def test_prepare_filters_splits_deterministically_and_caps_the_vocabulary(fra_file):
  pairs = tr.read_pairs(fra_file)
  d = tr.prepare(pairs, "fra", max_words=6, vocab_size=10, test_percent=30)
  d2 = tr.prepare(pairs, "fra", max_words=6, vocab_size=10, test_percent=30)
  assert d.test_src == d2.test_src and d.train_src == d2.train_src
  everything = d.train_src + d.test_src
  assert all(len(s) <= 6 for s in everything) and all(len(t) <= 6 for t in d.train_tgt)
  assert len(everything) == len(LINES) - 1  # only the long pair is dropped
  assert 0 < len(d.test_src) < len(everything)
  # A source with several references falls wholly on one side of the split.
  both = [s for s in everything if s == ["je", "vois", "."]]
  assert both and (both[0] in d.test_src) != (both[0] in d.train_src)
  # Vocabulary: the specials, then the 6 most frequent training tokens, built from training only.
  assert len(d.src_vocab) == 10 and d.src_vocab.itos[:4] == list(tr.SPECIALS)
  assert d.src_vocab.itos[4:6] == [".", "mot"]
  unknown = [w for s in d.test_src for w in s if w not in d.src_vocab.stoi]
  assert unknown and (d.src_vocab.encode(unknown) == tr.UNK_ID).all()


def test_to_arrays_pads_and_marks_bos_eos(fra_file):
  d = tr.prepare(tr.read_pairs(fra_file), "eng", max_words=6, vocab_size=100, test_percent=30)
  a = tr.to_arrays(d.train_src, d.train_tgt, d.src_vocab, d.tgt_vocab, 6)
  assert a["src"].shape == (len(d.train_src), 6) and a["tgt_in"].shape == (len(d.train_src), 7)
  for i, (s, t) in enumerate(zip(d.train_src, d.train_tgt)):
    assert d.src_vocab.decode(a["src"][i, :a["src_len"][i]]) == s
    assert a["tgt_in"][i, 0] == 1 and d.tgt_vocab.decode(a["tgt_in"][i, 1:len(t) + 1]) == t
    assert a["tgt_out"][i, len(t)] == 2 and a["tgt_len"][i] == len(t) + 1
    assert (a["tgt_out"][i, len(t) + 1:] == 0).all() and (a["src"][i, len(s):] == 0).all()


def test_bad_arguments(fra_file):
  pairs = tr.read_pairs(fra_file)
  with pytest.raises(ValueError, match="source"):
    tr.prepare(pairs, "deu")
  with pytest.raises(ValueError, match="vocab_size"):
    tr.prepare(pairs, vocab_size=3)
  with pytest.raises(ValueError, match="max_words"):
    tr.prepare(pairs, max_words=0)
