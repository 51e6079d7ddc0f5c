"""Examples that cannot drift (issue 20): README.md and docs/*.md against the code.

- Every ```python block runs: the blocks of one page in order, in one namespace (as a doctest
  would), from the repository root. A block may be skipped only by a first line
  ``# not run by the tests: REASON``, so that the reason shows on the page too.
- Every shell command shown (```bash blocks and inline code, and the usage lines of the configs'
  docstrings) is checked: ``./launch.sh NAME``
  names one of launch.sh's own cases, an experiment or a config; ``python -m MODULE`` names a
  module that exists; every ``--flag`` is defined by that module or a module of ours it imports
  (absl ``DEFINE_*``); a config (``--config=configs/X.py:ARG``, or the one the command defaults
  to) loads through ml_collections' own ``config_flags`` with the overrides shown, so an
  unknown variant, an unknown ``--config.FIELD`` or a value of the wrong type fails here.
  Placeholders (``NAME``, ``DIR``, ``...``, ``[--flags]``) are not checked.
- Every relative link between the pages points at a file that exists, and every ``#anchor`` at a
  heading of that file.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import pathlib
import re
import shlex

import jax
import pytest
from absl import flags
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
SKIP_MARK = "# not run by the tests:"

# Pages other branches are writing now (issue 20's language-model and multi-host pages); the
# README already links them. Remove each name once its page is merged.
PENDING_PAGES = {"docs/language_models.md", "docs/multihost.md"}

# Flags absl defines in every binary.
ABSL_FLAGS = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok", "logtostderr",
              "alsologtostderr", "log_dir", "verbosity", "v", "stderrthreshold", "only_check_args"}
# launch.sh handles these itself (they start recurrent/training/launcher.py).
LAUNCH_FLAGS = {"num_processes", "devices_per_process"}


def _rel(path: pathlib.Path) -> str:
  return str(path.relative_to(ROOT))


def _fences(text: str):
  """(language, line number of the opening fence, body) for every fenced block."""
  for m in re.finditer(r"(?ms)^```(\w*)[^\n]*\n(.*?)^```", text):
    yield m.group(1), text[:m.start()].count("\n") + 1, m.group(2)


def _prose(text: str) -> str:
  """The page without its fenced blocks (for inline code and links)."""
  return re.sub(r"(?ms)^```.*?^```", "", text)


# ---- Python blocks -------------------------------------------------------------------------

def _python_pages():
  for page in PAGES:
    blocks = [(line, body) for lang, line, body in _fences(page.read_text()) if lang == "python"]
    if blocks:
      yield pytest.param(page, blocks, id=_rel(page))


@pytest.mark.parametrize("page,blocks", list(_python_pages()))
def test_python_blocks_run(page, blocks, monkeypatch):
  monkeypatch.chdir(ROOT)
  namespace = {"__name__": "__docs__"}
  ran = 0
  for line, body in blocks:
    first = body.lstrip().splitlines()[0] if body.strip() else ""
    if first.startswith(SKIP_MARK):
      assert first[len(SKIP_MARK):].strip(), f"{_rel(page)}:{line}: a skipped block must say why"
      continue
    code = compile(body, f"{_rel(page)}:{line}", "exec")
    try:
      # JAX's default rank promotion, as a reader running the example has it (the suite's
      # conftest raises on it, and Keras's GRU relies on it).
      with jax.numpy_rank_promotion("allow"):
        exec(code, namespace)  # noqa: S102 - the documentation's own examples
    except Exception as e:
      raise AssertionError(f"{_rel(page)}: the python block at line {line} fails: "
                           f"{type(e).__name__}: {e}") from e
    ran += 1
  assert ran, f"{_rel(page)}: every python block is skipped"


# ---- Shell commands ------------------------------------------------------------------------

def _is_placeholder(s: str) -> bool:
  """NAME, configs/NAME.py, DIR/x, W, HOST:PORT, ..., [--flags], <x>: shown as patterns, not values."""
  if "..." in s or "[" in s or "<" in s or "$" in s:
    return True
  stem = re.split(r"[/:=]", s.removesuffix(".py"))
  return any(re.fullmatch(r"[A-Z][A-Z_0-9]*", part) for part in stem if part)


def _commands_in_block(body: str):
  """Shell commands of a bash block: continuations joined, for-loop variables expanded."""
  body = body.replace("\\\n", " ")
  loops = dict(re.findall(r"\bfor (\w+) in ([^;]+);", body))
  names = list(loops)
  combos = list(itertools.product(*(loops[n].split() for n in names))) or [()]
  lines, pending = [], ""
  for raw in body.splitlines():    # a quoted string may span lines: join until the quotes close
    pending = f"{pending}\n{raw}" if pending else raw
    try:
      shlex.split(pending, comments=True)
    except ValueError:
      continue
    lines.append(pending)
    pending = ""
  for raw in lines + ([pending] if pending else []):
    if not re.search(r"(\./launch\.sh|python3? -m)\b", raw):
      continue
    for values in combos:
      line = raw
      for n, v in zip(names, values):
        line = line.replace("${" + n + "}", v).replace("$" + n, v)
      yield line


def _commands(page: pathlib.Path):
  """(where, command line) for every command shown on the page."""
  text = page.read_text()
  for lang, line, body in _fences(text):
    if lang in ("bash", "sh", "shell", "console"):
      for cmd in _commands_in_block(body):
        yield f"{_rel(page)}:{line}", cmd
  prose = _prose(text)
  for m in re.finditer(r"`((?:\./launch\.sh|python3? -m )[^`]*)`", prose):
    yield f"{_rel(page)} (inline)", m.group(1)


def _split_commands(line: str) -> list[list[str]]:
  """Shell words of each simple command (split at ; && || | and a launcher's ``--``)."""
  lex = shlex.shlex(line, posix=True, punctuation_chars=";&|")
  lex.whitespace_split = True
  lex.commenters = "#"
  commands, current = [], []
  for tok in lex:
    if tok in (";", "&&", "||", "|", "&", "--"):
      commands.append(current)
      current = []
    else:
      current.append(tok)
  commands.append(current)
  out = []
  for words in commands:
    while words and (re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*=.*", words[0])
                     or words[0] in ("do", "then", "time", "exec", "srun")):
      words = words[1:]
    if words:
      out.append(words)
  return out


def _module_file(module: str) -> pathlib.Path | None:
  parts = module.split(".")
  for cand in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
    if cand.exists():
      return cand
  return None


def _defined_flags(module: str, seen: set | None = None) -> set[str]:
  """The absl flags a module of ours defines, and those of the modules of ours it imports."""
  seen = set() if seen is None else seen
  path = _module_file(module)
  if path is None or module in seen:
    return set()
  seen.add(module)
  src = path.read_text()
  names = set(re.findall(r"DEFINE_\w+\(\s*[\"'](\w+)[\"']", src))
  imported = set(re.findall(r"^\s*import ((?:recurrent|experiments)[\w.]*)", src, re.M))
  for base, names_ in re.findall(r"^\s*from ((?:recurrent|experiments)[\w.]*) import ([\w, ]+)",
                                 src, re.M):
    imported.add(base)
    imported.update(f"{base}.{n.strip()}" for n in names_.split(","))
  for m in imported:
    names |= _defined_flags(m, seen)
  return names


def _default_config(module: str) -> str | None:
  src = _module_file(module).read_text()
  m = re.search(r"DEFINE_config_file\(\s*\"config\",\s*\"([^\"]+)\"", src)
  return m.group(1) if m else None


def _load_config(where: str, spec: str, overrides: list[str]):
  """Loads ``spec`` (configs/X.py[:ARG]) with the overrides, as the binaries do."""
  argv = ["docs", f"--config={spec}", *overrides]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config", flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  try:
    fv(argv)
    return fv.config
  except Exception as e:
    raise AssertionError(f"{where}: --config={spec} {' '.join(overrides)}: "
                         f"{type(e).__name__}: {e}") from e


def _launch_cases() -> set[str]:
  src = (ROOT / "launch.sh").read_text()
  block = src[src.index('case "$cmd" in'):]
  return set(re.findall(r"^\s{2}(\w+)\)", block, re.M))


def _check_python_module(where: str, module: str, args: list[str], default_config=None,
                         extra_flags=frozenset()):
  assert _module_file(module) is not None, f"{where}: no module {module}"
  defined = _defined_flags(module) | ABSL_FLAGS | set(extra_flags)
  config, overrides, positional = None, [], []
  for a in args:
    if not a.startswith("-"):
      positional.append(a)
      continue
    name, _, value = a.lstrip("-").partition("=")
    if name.startswith("config."):
      overrides.append(a)
      continue
    if a.startswith("--"):
      assert name in defined, f"{where}: {module} defines no flag --{name}"
    if name == "config":
      config = value
  if "config" not in defined:
    assert not overrides, f"{where}: {module} takes no --config"
    return positional
  config = config or default_config or _default_config(module)
  if config is None or _is_placeholder(config):
    return positional
  overrides = [o for o in overrides if not _is_placeholder(o.partition("=")[2])]
  _load_config(where, config, overrides)
  return positional


def _check_command(where: str, words: list[str]):
  head = words[0]
  if head in ("python", "python3") and len(words) > 2 and words[1] == "-m":
    module, args = words[2], words[3:]
    if module in ("pytest", "pip"):
      return
    positional = _check_python_module(where, module, args)
    if module == "experiments.sweep":
      _check_sweep_config(where, positional)
    return
  if head != "./launch.sh":
    return
  name, args = (words[1], words[2:]) if len(words) > 1 else ("gradient_decay", [])
  if _is_placeholder(name) or name.startswith("-"):
    return
  if name == "test":
    for a in args:
      if a.startswith("tests/"):
        assert (ROOT / a.split("::")[0]).exists(), f"{where}: no test file {a}"
    return
  if name == "sweep":
    positional = _check_python_module(where, "experiments.sweep", args)
    _check_sweep_config(where, positional)
    return
  if name in _launch_cases():
    if name == "docs":
      assert (ROOT / "docs" / "build_api.py").exists() and len(args) <= 1, f"{where}: {words}"
      return
    module = {"bench": "experiments.benchmark"}.get(name)
    assert module, f"{where}: launch.sh case {name!r} is not known to this test"
    _check_python_module(where, module, args)
    return
  if (ROOT / "experiments" / f"{name}.py").exists():
    module = f"experiments.{name}"
  else:
    assert (ROOT / "configs" / f"{name}.py").exists(), \
        f"{where}: launch.sh has no experiment or config named {name!r}"
    module = "experiments.train"
  default = f"configs/{name}.py" if (ROOT / "configs" / f"{name}.py").exists() else None
  _check_python_module(where, module, args, default_config=default, extra_flags=LAUNCH_FLAGS)


def _check_sweep_config(where: str, positional: list[str]):
  for p in positional:
    if _is_placeholder(p):
      continue
    assert (ROOT / p.partition(":")[0]).exists(), f"{where}: no config file {p}"
    config = _load_config(where, p, [])
    assert config is not None
    spec = importlib.util.spec_from_file_location("_sweep_config", ROOT / p.partition(":")[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert hasattr(mod, "get_sweep"), f"{where}: {p} has no get_sweep()"
    assert mod.get_sweep(), f"{where}: {p}'s get_sweep() is empty"


def _config_commands():
  """The commands a config's docstring shows (its own usage lines: STYLE's "the exact command")."""
  for path in sorted((ROOT / "configs").glob("*.py")):
    doc = (ast.get_docstring(ast.parse(path.read_text())) or "").replace("\\\n", " ")
    for i, raw in enumerate(doc.splitlines()):
      if re.match(r"\s*(\./launch\.sh|python3? -m )", raw):
        yield f"{_rel(path)} (docstring line {i + 1})", raw.strip()


def _all_commands():
  for page in PAGES:
    for where, line in _commands(page):
      yield where, line
  yield from _config_commands()


def test_shell_commands_name_what_exists(monkeypatch):
  monkeypatch.chdir(ROOT)
  checked = 0
  for where, line in _all_commands():
    try:
      commands = _split_commands(line)
    except ValueError as e:
      raise AssertionError(f"{where}: cannot parse {line!r}: {e}") from e
    for words in commands:
      _check_command(where, words)
      checked += 1
  assert checked > 40  # the pages show many commands; a parser that finds none is broken


# ---- Links ---------------------------------------------------------------------------------

def _slug(heading: str) -> str:
  """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: pathlib.Path) -> set[str]:
  return {_slug(h) for h in re.findall(r"(?m)^#{1,6} (.+)$", _prose(page.read_text()))}


def test_links_resolve():
  for page in PAGES:
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
      if re.match(r"[a-z]+:", target):
        continue
      path, _, anchor = target.partition("#")
      dest = (page.parent / path).resolve() if path else page
      if _rel(dest) in PENDING_PAGES and not dest.exists():
        continue
      assert dest.exists(), f"{_rel(page)}: link to {target}: no such file"
      if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{_rel(page)}: link to {target}: no such heading"


# Paths a page names on purpose although they are gone (it says so).
GONE_PATHS = {"recurrent/fused.py"}


def test_named_files_exist():
  """Every repository path a page names in backticks (`recurrent/x.py`, `tests/y.py`, ...) exists."""
  pattern = r"`((?:recurrent|experiments|configs|tests|docs)/[\w./-]+\.(?:py|md|json|png|npz))`"
  for page in PAGES:
    for path in re.findall(pattern, page.read_text()):
      if path in GONE_PATHS or _is_placeholder(path):
        continue
      assert (ROOT / path).exists(), f"{_rel(page)}: names {path}, which does not exist"


def test_every_page_is_linked_from_the_front_page():
  linked = {(ROOT / t.partition("#")[0]).resolve()
            for t in re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text())}
  for page in PAGES[1:]:
    assert page in linked, f"README.md does not link {_rel(page)}"


# ---- The checker itself --------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "./launch.sh nope",                                               # no such experiment
    "./launch.sh sine --config.model.celll=gru",                      # no such field
    "./launch.sh sine --config.model.cell=gru --config.num_steps=x",  # wrong type
    "python -m experiments.train --config=configs/sine.py:nope --workdir=/tmp/x",  # no variant
    "python -m experiments.nope --workdir=/tmp/x",                    # no module
    "python -m experiments.evaluate --workdir=/tmp/x --chekpoint=3",  # no such flag
    "./launch.sh sweep configs/nope.py --workdir=/tmp/x",             # no config file
])
def test_checker_rejects_drift(line, monkeypatch):
  monkeypatch.chdir(ROOT)
  with pytest.raises(AssertionError):
    for words in _split_commands(line):
      _check_command("test", words)


def test_checker_expands_loops_and_placeholders():
  block = ("for c in rnn gru; do for lr in 1e-3 3e-3; do\n"
           "  python -m experiments.train --config=configs/music.py:cell=$c "
           "--config.optim.learning_rate=$lr --workdir=runs/m/${c}_lr$lr; done; done\n")
  lines = list(_commands_in_block(block))
  assert len(lines) == 4 and "cell=gru" in lines[3] and "runs/m/gru_lr3e-3" in lines[3]
  assert _is_placeholder("configs/NAME.py") and _is_placeholder("DIR/x")
  assert not _is_placeholder("configs/sine.py:smoke") and not _is_placeholder("runs/sine")


# ---- The API reference's reference check (docs/build_api.py; pdoc itself is not needed) ------

def test_api_reference_flags_unlinked_names():
  spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
  build_api = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(build_api)
  page = ('<code><a href="decoding.html">recurrent.decoding</a></code> '
          '<code>recurrent.decodng.beam</code> <code>recurrent.layers.unrol()</code> '
          '<code>recurrent/tasks/</code> <code>jax.lax.scan</code>')
  assert build_api.unresolved_references(page) == ["recurrent.decodng.beam", "recurrent.layers.unrol"]
  assert "recurrent.cells.lstm" in build_api.modules() and "recurrent" in build_api.modules()


@pytest.mark.slow
def test_api_reference_builds(tmp_path):
  """The whole reference builds with no broken reference (needs the [docs] extra: ./launch.sh docs)."""
  pytest.importorskip("pdoc")
  spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
  build_api = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(build_api)
  assert build_api.build(tmp_path) == []
  assert "MathJax" in (tmp_path / "recurrent.html").read_text()
  assert (tmp_path / "recurrent" / "cells" / "lstm.html").exists()
