"""The notebooks run as written: their code cells execute in order without error.

claims.ipynb reads back the session's fast claims (``fast_claims``, conftest.py), so
they train once per test session."""

import json
import os

import pytest

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")
# What each notebook prints when it ran through.
PRINTS = {"quickstart.ipynb": ("last logged loss", "->"),
          "claims.ipynb": ("claim long_cot:", "claim rlp:", "long_cot - short =")}


@pytest.mark.xdist_group("fast_claims")   # one worker trains the fast claims, in order
@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NOTEBOOKS)
                                        if n.endswith(".ipynb")))
def test_notebook_runs(name, capsys, request, monkeypatch):
  if name == "claims.ipynb":
    workdir, _ = request.getfixturevalue("fast_claims")["long_cot"]
    monkeypatch.setenv("CLAIMS_WORKDIR", os.path.dirname(workdir))
  with open(os.path.join(NOTEBOOKS, name)) as f:
    cells = json.load(f)["cells"]
  namespace = {}
  for cell in cells:
    if cell["cell_type"] == "code":
      exec(compile("".join(cell["source"]), f"{name}", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out
  assert all(text in printed for text in PRINTS[name]), printed[-2000:]
