"""The notebooks run as a user runs them: every cell in order in a fresh Jupyter kernel
whose working directory is outside the repository (as in Colab), and the quickstart
again from the top (its training cell resumes: the finished run does no more work).

claims.ipynb reads back the session's fast claims (``fast_claims``, conftest.py), so
they train once per test session."""

import os

import nbclient
import nbformat
import pytest

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")
# What each notebook prints when it ran through.
PRINTS = {"quickstart.ipynb": ("last logged loss", "->", "same weights: True",
                               "transformers:"),
          "claims.ipynb": ("claim long_cot:", "claim rlp:", "long_cot - short =")}
CELL_TIMEOUT_S = 600


def _run(name: str, cwd: str) -> str:
  """Executes the notebook in a fresh kernel started in ``cwd``; its printed text."""
  notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
  nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                          resources={"metadata": {"path": cwd}}).execute()
  return "".join(output.get("text", "") for cell in notebook.cells
                 for output in cell.get("outputs", ()) if output.get("output_type") == "stream")


@pytest.mark.xdist_group("fast_claims")   # one worker trains the fast claims, in order
@pytest.mark.parametrize("name", sorted(n for n in os.listdir(NOTEBOOKS)
                                        if n.endswith(".ipynb")))
def test_notebook_runs_in_a_fresh_kernel(name, request, monkeypatch, tmp_path):
  if name == "claims.ipynb":
    workdir, _ = request.getfixturevalue("fast_claims")["long_cot"]
    monkeypatch.setenv("CLAIMS_WORKDIR", os.path.dirname(workdir))
  printed = _run(name, str(tmp_path))
  assert all(text in printed for text in PRINTS[name]), printed[-2000:]
  if name == "quickstart.ipynb":
    assert os.path.exists(tmp_path / "runs" / "quickstart" / "summary.json")
    again = _run(name, str(tmp_path))
    assert "step 10/40" not in again and "finished" in again, again[-2000:]
