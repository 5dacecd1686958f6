"""Self-Notes (arXiv 2305.00833): the data, reading with notes, its evaluation, the claim."""

import json
import math
import random
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from configs.claims import self_notes as claim_config
from data import self_notes as data_lib
from data import tokenizer as tokenizer_lib
from model import config as mcfg
from model import generate as gen
from model import lm
from model import self_notes as sn
from train import claims
from train import evaluate
from train import sharding
from train.loops import Context

PROMPTS = ([5, 9, 14, 3, 7, 22], [11, 4], [8, 30, 2, 19, 40])
NEW = 5
GREEDY = gen.SamplingConfig(max_new_tokens=NEW, temperature=0.0, stop_tokens=(2,))
read_jit = jax.jit(sn.read_with_notes, static_argnames=("model_cfg", "sampling", "notes"))


# ----------------------------------------------------------------------------- data


def run_program(problem):
  """The values after each statement, executed independently of the generator."""
  values, states = {}, []
  for statement in problem.statements:
    target, expression = statement.rstrip(" ;").split(" = ")
    values[target] = eval(expression, {}, dict(values))   # pylint: disable=eval-used
    assert 0 <= values[target] <= 9, statement
    states.append(f"{target} = {values[target]}")
  return values, states


def run_boxes(problem):
  """The changed boxes' contents after each operation, parsed from the statements."""
  contents, notes = {}, []
  show = lambda box: " and ".join(f"the {i}" for i in sorted(contents[box])) or "nothing"
  for statement in problem.statements:
    if m := re.fullmatch(r"Box (\d) contains (.*)\.", statement):
      contents[m[1]] = set(re.findall(r"the (\w+)", m[2]))
      notes.append("")
    elif m := re.fullmatch(r"Move the (\w+) from Box (\d) to Box (\d)\.", statement):
      contents[m[2]].remove(m[1])
      contents[m[3]].add(m[1])
      notes.append(f"Box {m[2]} contains {show(m[2])} ; Box {m[3]} contains {show(m[3])}")
    elif m := re.fullmatch(r"Remove the (\w+) from Box (\d)\.", statement):
      contents[m[2]].remove(m[1])
      notes.append(f"Box {m[2]} contains {show(m[2])}")
    else:
      m = re.fullmatch(r"Put the (\w+) into Box (\d)\.", statement)
      contents[m[2]].add(m[1])
      notes.append(f"Box {m[2]} contains {show(m[2])}")
  return show(re.fullmatch(r"Box (\d) contains", problem.query)[1]), notes


def test_notes_hold_the_true_state_and_cutting_them_gives_the_plain_text():
  rng = random.Random(3)
  for problem in data_lib.problems("program", rng, 200, (2, 3, 4, 8)):
    values, states = run_program(problem)
    assert list(problem.notes) == states
    assert problem.answer == str(values[problem.query.split()[1]])
    assert data_lib.without_notes(problem.document(notes=True)) == problem.document(False)
    assert problem.document(True).count(data_lib.NOTE_START) == problem.operations
  for problem in data_lib.problems("boxes", rng, 200, (0, 2, 5)):
    answer, notes = run_boxes(problem)
    assert (problem.answer, list(problem.notes)) == (answer, notes)
    assert data_lib.without_notes(problem.document(notes=True)) == problem.document(False)
  with pytest.raises(ValueError, match="self-notes task 'chess'"):
    data_lib.problems("chess", rng, 1, (2,))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  directory = tmp_path_factory.mktemp("self_notes")
  figures = data_lib.claim_dataset(str(directory), train_problems=1500, eval_problems=40)
  return directory, figures, tokenizer_lib.load_tokenizer(str(directory / "tokenizer.model"))


def read_jsonl(path):
  return [json.loads(line) for line in open(path)]


def test_claim_dataset_files_lengths_and_tokenizer(built):
  directory, figures, tokenizer = built
  documents = {arm: open(directory / f"train_{arm}.txt").read().strip().split("\n\n")
               for arm in ("notes", "plain")}
  assert [data_lib.without_notes(d) for d in documents["notes"]] == documents["plain"]
  assert len(documents["plain"]) == figures["train_problems"] > 1400
  dev, valid, ood = (read_jsonl(directory / f"{name}.jsonl") for name in ("dev", "valid", "ood"))
  statements = lambda r: r["question"].count(" ;")
  assert {r["kind"] for r in dev} <= {"ops2", "ops3", "ops4"} and len(dev) == 40
  assert [r["kind"] for r in valid] == ["id"] * 40 + ["ood"] * 40
  assert valid[40:] == [{**r, "kind": "ood"} for r in ood]
  longest_trained = max(d.split("\n")[0].count(" ;") for d in documents["plain"])
  assert longest_trained == 4 and min(map(statements, ood)) == 6
  assert all(r["kind"] == f"ops{statements(r)}" for r in ood)
  questions = {d.split("\n")[0] for d in documents["plain"]}
  assert not questions & {r["question"] for r in dev + valid}
  assert all(data_lib.NOTE_START not in r["question"] for r in dev + valid)
  # Each marker is one id; the notes text's ids without the notes are the plain text's.
  start, end = (tokenizer.encode(marker) for marker in data_lib.NOTE_TOKENS)
  assert len(start) == len(end) == 1 and tokenizer.vocab_size == 300
  for notes_text, plain_text in zip(documents["notes"][:200], documents["plain"]):
    ids, kept, inside = tokenizer.encode(notes_text), [], False
    for i in ids:
      inside = inside or i == start[0]
      kept += [] if inside else [i]
      inside = inside and i != end[0]
    assert kept == tokenizer.encode(plain_text)
  (directory / "big").mkdir()
  with pytest.raises(ValueError, match="gives a tokenizer of .* ids"):
    data_lib.claim_dataset(str(directory / "big"), train_problems=100, eval_problems=5,
                           vocab_size=1024)


# ----------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def model():
  cfg = mcfg.tiny_transformer(vocab_size=64, d_model=32, mlp_dim=64)
  return cfg, lm.init(jax.random.PRNGKey(1), cfg)


def reference_reading(params, cfg, tokens, notes, width=64):
  """The reading of one input, step by step with the full uncached forward: (written
  tokens, answer, notes, forced closes)."""
  forward = jax.jit(lambda p, t: lm.forward(p, t, cfg)[0])
  written, notes_taken, forced = [tokens[0]], 0, 0
  greedy = lambda: int(jnp.argmax(forward(params, jnp.asarray(
      [written + [0] * (width - len(written))]))[0, len(written) - 1]))
  for token in tokens[1:]:
    if notes_taken < notes.max_notes and greedy() == notes.start_token:
      written.append(notes.start_token)
      notes_taken += 1
      for _ in range(notes.max_note_tokens):
        written.append(greedy())
        if written[-1] == notes.end_token:
          break
      else:
        written.append(notes.end_token)
        forced += 1
    written.append(token)
  answer = []
  while len(answer) < NEW and (not answer or answer[-1] not in GREEDY.stop_tokens):
    answer.append(greedy())
    written.append(answer[-1])
  return written, answer, notes_taken, forced


def read(model, notes):
  cfg, params = model
  tokens, lengths = sn.right_pad(PROMPTS)
  out = read_jit(params, tokens, lengths, jax.random.PRNGKey(0), model_cfg=cfg,
                               sampling=GREEDY, notes=notes)
  rows = lambda values, mask: [v[m > 0].tolist() for v, m in zip(values, mask)]
  return (rows(out.sequence, out.sequence_mask), rows(out.answer, out.answer_mask),
          out.notes_B.tolist(), out.forced_B.tolist(), np.asarray(out.note_mask))


def test_without_notes_the_answer_is_plain_greedy_generation(model):
  cfg, params = model
  sequences, answers, notes, forced = read(model, sn.NoteConfig(60, 61, 4, 4))[:4]
  assert notes == forced == [0, 0, 0]
  plain = gen.generate(params, *gen.left_pad(PROMPTS), jax.random.PRNGKey(0), model_cfg=cfg,
                       sampling=GREEDY)
  assert answers == [t[m > 0].tolist() for t, m in zip(plain.tokens, plain.mask)]
  assert sequences == [list(p) + a for p, a in zip(PROMPTS, answers)]


def test_notes_join_the_context_and_reading_resumes(model):
  """With note markers the random model picks at some reading steps, every row's tokens
  are what reading step by step with the full forward writes: notes in several rows,
  closed by force (end id 1 never comes) or by the model itself (after 11: 47, 49)."""
  cfg, params = model
  forced_everywhere = sn.NoteConfig(49, 1, max_note_tokens=3, max_notes=4)
  closed_by_model = sn.NoteConfig(11, 49, max_note_tokens=3, max_notes=4)
  for notes in (forced_everywhere, closed_by_model):
    sequences, answers, taken, forced, note_mask = read(model, notes)
    for row, tokens in enumerate(PROMPTS):
      want = reference_reading(params, cfg, tokens, notes)
      assert (sequences[row], answers[row], taken[row], forced[row]) == want, row
      assert [t for t, m in zip(sequences[row], note_mask[row]) if not m] == tokens + answers[row]
    if notes is forced_everywhere:
      assert sum(k > 0 for k in taken) >= 2 and forced == taken
      for row, sequence in enumerate(sequences):   # start, 3 tokens, the forced end
        starts = [i for i, t in enumerate(sequence) if t == 49 and note_mask[row][i]
                  and (i == 0 or not note_mask[row][i - 1])]
        assert len(starts) == taken[row] and all(sequence[i + 4] == 1 for i in starts)
    else:
      assert taken[0] == 1 and forced[0] == 0 and sequences[0][2:5] == [11, 47, 49]


def test_sampled_notes_keep_the_input_in_order(model):
  """Notes and answers sampled at temperature 1 (the decision to write a note stays
  greedy): other keys write other tokens, and outside the notes every row is its input,
  then its answer."""
  cfg, params = model
  notes = sn.NoteConfig(49, 1, max_note_tokens=3, max_notes=4)
  tokens, lengths = sn.right_pad(PROMPTS)
  outs = [read_jit(params, tokens, lengths, jax.random.PRNGKey(seed),
                                 model_cfg=cfg, notes=notes,
                                 sampling=gen.SamplingConfig(max_new_tokens=NEW))
          for seed in (0, 1)]
  assert not np.array_equal(outs[0].sequence, outs[1].sequence)
  for out in outs:
    for row, prompt in enumerate(PROMPTS):
      written = out.sequence[row][out.sequence_mask[row] > 0]
      read_ = written[out.note_mask[row][out.sequence_mask[row] > 0] == 0].tolist()
      answer = out.answer[row][out.answer_mask[row] > 0].tolist()
      assert read_ == list(prompt) + answer and 1 <= len(answer) <= NEW


def test_bad_inputs_are_clear_errors():
  with pytest.raises(ValueError, match=r"inputs \[1\] are empty"):
    sn.right_pad([[3], []])
  with pytest.raises(ValueError, match="longer than 2 slots"):
    sn.right_pad([[3, 4, 5]], width=2)
  with pytest.raises(ValueError, match="start_token and end_token are both 7"):
    sn.NoteConfig(7, 7)
  with pytest.raises(ValueError, match="max_note_tokens=0"):
    sn.NoteConfig(7, 8, max_note_tokens=0)


# ----------------------------------------------------------------------- evaluation


def evaluator_for(directory, tokenizer, **fields):
  config = base.get_config()
  config.model.vocab_size = tokenizer.vocab_size
  config.eval = base.eval_section(
      text_files={}, records=str(directory / "valid.jsonl"), max_records=0,
      template="text", max_new_tokens=3, batch_size=40, **fields)
  model_cfg = mcfg.tiny_transformer(vocab_size=tokenizer.vocab_size, d_model=32, mlp_dim=64)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  return evaluate.Evaluator.create(ctx), model_cfg


def test_evaluation_with_notes_gives_finite_figures(built):
  directory, _, tokenizer = built
  evaluator, model_cfg = evaluator_for(directory, tokenizer, self_notes=True,
                                       note_tokens=data_lib.NOTE_TOKENS, max_note_tokens=2,
                                       max_notes=3)
  assert evaluator.notes.start_token == tokenizer.encode(data_lib.NOTE_START)[0]
  params = lm.init(jax.random.PRNGKey(0), model_cfg)
  figures = evaluator(params)
  assert {"pass@1", "pass@1/id", "pass@1/ood", "notes_per_record",
          "notes_forced_closed"} <= set(figures)
  assert all(math.isfinite(v) for v in figures.values())
  # The note-start token made the argmax everywhere (the residual's first feature a
  # large constant, the only one the head reads, and only for that token): every record
  # takes max_notes notes, each closed by force, and answers with markers only.
  params = {**params, "embed": params["embed"].at[:, 0].set(100.0),
            "final_norm": jnp.zeros_like(params["final_norm"]).at[0].set(1.0),
            "lm_head": jnp.zeros_like(params["lm_head"]).at[
                0, evaluator.notes.start_token].set(1.0)}
  figures = evaluator(params)
  assert figures["notes_per_record"] == 3 and figures["notes_forced_closed"] == 1.0
  assert figures["pass@1"] == 0.0 and all(math.isfinite(v) for v in figures.values())


def test_notes_need_single_token_markers_and_greedy_reading(built):
  directory, _, tokenizer = built
  shipped = tokenizer_lib.load_tokenizer(base.get_config().data.tokenizer_path)
  with pytest.raises(ValueError, match=r"eval.note_tokens: '<SN>' is \d+ tokens"):
    evaluator_for(directory, shipped, self_notes=True)
  with pytest.raises(ValueError, match="eval.self_notes reads greedily"):
    evaluator_for(directory, tokenizer, self_notes=True, samples=2)


# ---------------------------------------------------------------------------- claim


def test_claim_config_is_a_valid_claim():
  config = claim_config.get_config()
  claims.check(config)
  assert config.claim.metric == "pass@1/ood" and config.eval.self_notes
  assert config.stages.notes.run.model.vocab_size == config.datasets.self_notes.args.vocab_size
  assert config.stages.notes.run.data.tokenizer_path == "dataset:self_notes/tokenizer.model"


@pytest.mark.slow
def test_fast_self_notes_claim(fast_claim):
  """The fast claim end to end (~2 minutes here): both arms on equal tokens, read with
  notes on the in- and out-of-distribution records; only the notes arm writes notes. At
  60 steps the sign is not asserted."""
  workdir, summary = fast_claim("self_notes")
  notes, plain = summary["arms"]["notes"], summary["arms"]["plain"]
  assert summary["seeds"] == [0] and notes["tokens_seen"] == plain["tokens_seen"]
  for figures in (notes, plain):
    assert {"pass@1/id", "pass@1/ood", "notes_per_record", "notes_forced_closed"} <= set(figures)
    assert all(0.0 <= v <= 1.0 for v in figures["pass@1/ood"]["values"])
  assert notes["notes_per_record"]["mean"] > 1.0 and plain["notes_per_record"]["mean"] == 0.0
  assert summary["gate"]["stages"] == ["plain"] and summary["baselines"]["chance"] == 0.1
  built = summary["datasets"]["self_notes"]["figures"]
  assert built["tokenizer"]["vocab_size"] == 300 and 2.5 < built["notes_per_document"] < 3.5
  assert (workdir / "self_notes.png").exists()
