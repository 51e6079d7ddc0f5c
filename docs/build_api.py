"""Builds the API reference from the docstrings: ``./launch.sh docs [OUT]`` (default ``docs/api``).

pdoc renders every module of ``recurrent`` (reStructuredText docstrings, as the code writes them;
``$...$`` and ``$$...$$`` typeset by MathJax with ``math=True``; the equations the cells keep as
indented plain-text blocks stay monospaced, aligned as written). Why pdoc: one pinned package and
one call, no site configuration to keep beside the code, and it reads the docstrings as they are.

The build fails (exit 1, naming each problem) on
- a module that does not import (pdoc only warns), and
- a broken reference: a docstring's code span naming ``recurrent.x.y`` that pdoc could not turn
  into a link (pdoc leaves those as plain text, silently).
"""

from __future__ import annotations

import html
import pathlib
import re
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("recurrent",)

# A code span pdoc did not link: <code>recurrent.x.y</code> or <code>recurrent.x.y()</code>.
_UNLINKED = re.compile(r"<code>((?:%s)(?:\.\w+)+)(?:\(\))?</code>" % "|".join(PACKAGES))


def unresolved_references(page_html: str) -> list[str]:
  """Dotted names of our packages that appear in code spans without a link."""
  return sorted(set(html.unescape(m) for m in _UNLINKED.findall(page_html)))


def modules() -> list[str]:
  """Every module of our packages (listed, since a package's ``__all__`` hides its submodules)."""
  names = []
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      names.append(".".join(parts))
  return names


def build(out: pathlib.Path) -> list[str]:
  """Renders the reference into ``out``; returns the problems found (empty when it is sound)."""
  import pdoc
  import pdoc.render

  sys.path.insert(0, str(ROOT))
  pdoc.render.configure(docformat="restructuredtext", math=True, show_source=True)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc(*modules(), output_directory=out)
  # pdoc warns, and renders a stub, for a module that does not import; its other warnings
  # (annotations it cannot evaluate) do not lose documentation.
  problems = [f"pdoc: {w.message}" for w in caught if "import" in str(w.message).split("\n")[0]
              and str(w.message).startswith(("Couldn't import", "Error importing"))]
  for page in sorted(out.rglob("*.html")):
    for name in unresolved_references(page.read_text()):
      problems.append(f"{page.relative_to(out)}: broken reference `{name}`")
  return problems


def main(argv: list[str]) -> int:
  out = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "docs" / "api"
  problems = build(out)
  for p in problems:
    print(p, file=sys.stderr)
  if problems:
    print(f"API reference: {len(problems)} problem(s); see above", file=sys.stderr)
    return 1
  print(f"API reference: {out / 'index.html'}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
