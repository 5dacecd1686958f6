"""The notebooks run as written: their code cells execute in order without error."""

import json
import os

import pytest

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NOTEBOOKS)
                                        if n.endswith(".ipynb")))
def test_notebook_runs(name, capsys):
  with open(os.path.join(NOTEBOOKS, name)) as f:
    cells = json.load(f)["cells"]
  namespace = {}
  for cell in cells:
    if cell["cell_type"] == "code":
      exec(compile("".join(cell["source"]), f"{name}", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out
  assert "last logged loss" in printed and "->" in printed
