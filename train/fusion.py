r"""FusionFactory (arXiv 2507.10540): routing data from our checkpoints, query-level
routers, thought templates and model-level fusion records, one command each.

  python -m train.fusion data --config=<run config> --candidates=A[:mode],B[:mode] \
      --queries=q.jsonl --out=routing.json [--template=text] [--max_new_tokens=64] \
      [--samples=1] [--temperature=0.0] [--seed=0]
  python -m train.fusion router --config=<run config> --data=routing.json \
      --embedder=<checkpoint> --out=router.pkl [--method=knn|mlp] [--tradeoff=performance]
  python -m train.fusion route --config=<run config> --router=router.pkl \
      --embedder=<checkpoint> --data=eval_routing.json
  python -m train.fusion templates --config=<run config> --data=routing.json \
      --embedder=<checkpoint> --out=templates.json [--top_k=3] [--summariser=extractive]
  python -m train.fusion records --data=routing.json --out=fusion.jsonl [--top_k=5]

Routing data (``train/routing.py``): each candidate, a (checkpoint, mode) pair (mode: the
reasoning toggle of chat prompts, 'on', 'off' or none), answers every query (a records
file of {question, answer[, kind]}) under the prompt ``template``; per query and
candidate the checker's verdict (``data.answers``, as evaluation and the RL rewards
check), the completion tokens (the cost) and the response. ``route`` prints the routed
pass@1, tokens and the share routed to each candidate of a routing data file made on
held-out queries, beside each candidate's and the oracle's.

Query embeddings: the mean-pooled final hidden states of one of our models (the
``--embedder``, ``model/embedding.py``), of the bare question text.

Thought templates (``train/thought_templates.py``, §3.3): the top-k right answers of
each routing query summarised extractively or by a model (``--summariser=model``: the
``--summary_prompt`` with ``{question}`` and ``{answers}`` completed by the embedder's
weights), kept with the question's embedding for retrieval.

Model-level fusion (§3.4): ``records`` writes, per query, the responses of its ``top_k``
best candidates under (α, β) that are right (``--keep_wrong``: right or not) as SFT
records {question, solution, answer, provenance} (``train/sft.py`` reads them). The SFT
loop makes them itself from its starting weights and its teacher's
(``sft.synthesis.kind='fusion'``, ``fusion_from_run``).

In a claim (``train/claims.py``), a router arm routes between stages' final weights
(``evaluate_router``): routing data of each on the router's training queries and on the
eval records (greedy, the eval section's template, toggle and budget), the arm stage's
embeddings, and the figures of the routed answers, cached in the arm stage's entry.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Optional

import jax
import ml_collections
import numpy as np
from absl import app
from absl import flags
from jax.experimental import multihost_utils
from ml_collections import config_flags

from data import answers
from data import prompts as prompts_lib
from data import sources
from model import embedding
from model import generate as generate_lib
from model import partitioning
from train import checkpoint as checkpoint_lib
from train import cli
from train import config as run_config
from train import evaluate
from train import generation
from train import routing
from train import sharding
from train import stages as stages_lib
from train import synthesize
from train import thought_templates
from train import workdir as workdir_lib
from train.loops import Context

SUMMARY_PROMPT = "Solutions of: {question}\n{answers}\nThe method in short:"
SUMMARISERS = ("extractive", "model")


def load_model(config: ml_collections.ConfigDict, checkpoint: str):
  """(context, weights) of ``checkpoint`` (a run's workdir or a Hugging Face directory)
  under ``config``'s model, tokenizer and mesh."""
  if not os.path.isdir(checkpoint):
    raise FileNotFoundError(f"checkpoint {checkpoint}: no such directory")
  model_cfg, tokenizer = evaluate.model_and_tokenizer(config, checkpoint)
  ctx = Context(config=config, model_cfg=model_cfg, tokenizer=tokenizer,
                mesh=sharding.make_mesh(config.mesh), optimizer=None, schedule=None)
  params, _ = checkpoint_lib.load_params(checkpoint, model_cfg, ctx.param_shardings())
  return ctx, params


def parse_candidates(specs: Sequence[str]) -> list[routing.Candidate]:
  """'checkpoint[:mode]' → candidates named 'basename' or 'basename:mode'."""
  out = []
  for spec in specs:
    checkpoint, _, mode = spec.partition(":")
    if mode not in prompts_lib.THINKING:
      raise ValueError(f"candidate {spec!r}: mode {mode!r} is not one of "
                       f"{sorted(prompts_lib.THINKING)}")
    name = os.path.basename(os.path.normpath(checkpoint)) + (f":{mode}" if mode else "")
    out.append(routing.Candidate(name=name, checkpoint=checkpoint, mode=mode))
  return out


def read_queries(path: str) -> list[dict]:
  """The records of ``path`` ({question, answer[, kind]}); a ValueError if none."""
  queries = sources.read_records(path, required=("question", "answer"))
  if not queries:
    raise ValueError(f"queries {path}: no records (an empty query set)")
  return queries


# ----------------------------------------------------------------------- routing data


def answer_queries(ctx: Context, params, queries: Sequence[Mapping], *, mode: str,
                   template: str, max_new_tokens: int, samples: int = 1,
                   temperature: float = 0.0, batch_size: int = 64, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """One candidate's (Q,) share of right samples, (Q,) mean completion tokens and one
  response per query (its shortest right sample, else its first)."""
  tokenizer = ctx.tokenizer
  prompts = [prompts_lib.prompt_ids(q, tokenizer, template=template, thinking=mode)
             for q in queries]
  sampling = generate_lib.SamplingConfig(
      max_new_tokens=max_new_tokens, temperature=temperature if samples > 1 else 0.0,
      stop_tokens=prompts_lib.stop_token_ids(tokenizer, template), pad_id=tokenizer.pad_id)
  indices = [i for i in range(len(queries)) for _ in range(samples)]
  rows = generation.generate_in_chunks(
      ctx, params, prompts, indices, jax.random.PRNGKey(seed), sampling=sampling,
      chunk_rows=max(1, batch_size // samples) * samples, row_multiple=samples,
      all_rows=True)
  texts = [(i, tokenizer.decode(ids.tolist()), len(ids)) for i, ids, _ in rows]
  verdicts = answers.map_checks(lambda row: answers.is_correct(row[1], queries[row[0]]),
                                texts)
  by_query = collections.defaultdict(list)
  for (i, text, length), right in zip(texts, verdicts):
    by_query[i].append((not right, length, text))
  correct, tokens, responses = np.zeros(len(queries)), np.zeros(len(queries)), []
  for i in range(len(queries)):
    got = by_query[i]
    correct[i] = sum(not wrong for wrong, _, _ in got) / len(got)
    tokens[i] = sum(length for _, length, _ in got) / len(got)
    right = sorted(g for g in got if not g[0])
    responses.append((right[0] if right else got[0])[2])
  return correct, tokens, responses


def routing_data(config: ml_collections.ConfigDict, candidates: Sequence[routing.Candidate],
                 queries: Sequence[Mapping], *, template: str, max_new_tokens: int,
                 samples: int = 1, temperature: float = 0.0, batch_size: int = 64,
                 seed: int = 0) -> routing.RoutingData:
  """Every candidate run over ``queries`` (``answer_queries``); ValueError for an empty
  query or candidate list, before any model is loaded."""
  if not queries:
    raise ValueError("routing data: no queries (an empty query set)")
  if not candidates:
    raise ValueError("routing data: no candidates")
  if samples < 1:
    raise ValueError(f"routing data: samples={samples}, at least 1")
  columns = []
  for candidate in candidates:
    ctx, params = load_model(config, candidate.checkpoint)
    columns.append(answer_queries(ctx, params, queries, mode=candidate.mode,
                                  template=template, max_new_tokens=max_new_tokens,
                                  samples=samples, temperature=temperature,
                                  batch_size=batch_size, seed=seed))
  return routing.RoutingData(
      list(candidates), [dict(q) for q in queries],
      np.stack([c for c, _, _ in columns], axis=1), np.stack([t for _, t, _ in columns], axis=1),
      [list(r) for r in zip(*(responses for _, _, responses in columns))],
      {"template": template, "max_new_tokens": max_new_tokens, "samples": samples,
       "temperature": temperature, "seed": seed})


def combine(datas: Sequence[routing.RoutingData]) -> routing.RoutingData:
  """The candidates of several routing data of the same queries side by side."""
  questions = [q["question"] for q in datas[0].queries]
  for data in datas[1:]:
    if [q["question"] for q in data.queries] != questions:
      raise ValueError("combine: routing data of different queries")
  return routing.RoutingData(
      [c for d in datas for c in d.candidates], datas[0].queries,
      np.concatenate([d.correct_QC for d in datas], axis=1),
      np.concatenate([d.tokens_QC for d in datas], axis=1),
      [[r for d in datas for r in d.responses[q]] for q in range(len(questions))],
      datas[0].settings)


# ------------------------------------------------------------------------- embeddings


@functools.lru_cache(maxsize=8)
def _jitted_embedding(model_cfg, mesh, rules):
  return partitioning.jit(functools.partial(embedding.mean_pooled, cfg=model_cfg), mesh,
                          rules)


def embed_questions(ctx: Context, params, questions: Sequence[str], batch_size: int = 64,
                    max_tokens: int = 0) -> np.ndarray:
  """(Q, D) mean-pooled final hidden states of each question's tokens, its first
  ``max_tokens`` if set (no queries: (0, D))."""
  d = ctx.model_cfg.d_model
  if not questions:
    return np.zeros((0, d), np.float32)
  ids = [(ctx.tokenizer.encode(q) or [ctx.tokenizer.pad_id])[:max_tokens or None]
         for q in questions]
  width = max(map(len, ids))
  unit = ctx.row_unit()
  rows = -(-min(batch_size, len(ids)) // unit) * unit
  embed = _jitted_embedding(ctx.model_cfg, ctx.mesh, ctx.rules)
  out = []
  for start in range(0, len(ids), rows):
    chunk = ids[start:start + rows]
    tokens = np.full((rows, width), ctx.tokenizer.pad_id, np.int32)
    mask = np.zeros((rows, width), np.int32)
    for r, row in enumerate(chunk):
      tokens[r, :len(row)], mask[r, :len(row)] = row, 1
    local = {"tokens": tokens[ctx.process_rows(rows)], "mask": mask[ctx.process_rows(rows)]}
    batch = ctx.to_global(local, rows)
    pooled = embed(params, batch["tokens"], batch["mask"])
    if jax.process_count() > 1:
      pooled = multihost_utils.process_allgather(pooled, tiled=True)
    out.append(np.asarray(pooled, np.float32)[:len(chunk)])
  return np.concatenate(out)


def embed_with(config: ml_collections.ConfigDict, checkpoint: str,
               questions: Sequence[str], max_tokens: int = 0) -> np.ndarray:
  ctx, params = load_model(config, checkpoint)
  return embed_questions(ctx, params, questions, max_tokens=max_tokens)


# -------------------------------------------------------------------------- templates


def summarise_with_model(ctx: Context, params, questions: Sequence[str],
                         answer_lists: Sequence[Sequence[str]], *,
                         prompt: str = SUMMARY_PROMPT, max_new_tokens: int = 64,
                         batch_size: int = 64) -> list[str]:
  """Per question, the model's greedy completion of ``prompt`` (``{question}`` and
  ``{answers}``, the answers one per paragraph) as plain text; '' where it has none."""
  keep = [q for q, found in enumerate(answer_lists) if found]
  out = [""] * len(questions)
  completions = generation.complete_texts(
      ctx, params, [prompt.format(question=questions[q], answers="\n\n".join(answer_lists[q]))
                    for q in keep], max_new_tokens=max_new_tokens, batch_size=batch_size)
  for q, completion in zip(keep, completions):
    out[q] = completion
  return out


def make_templates(config: ml_collections.ConfigDict, data: routing.RoutingData,
                   embedder: str, *, top_k: int = 3, summariser: str = "extractive",
                   prompt: str = SUMMARY_PROMPT, quorum: float = 0.5,
                   max_new_tokens: int = 64) -> thought_templates.TemplateBank:
  """The template bank of ``data``'s queries (those with a right answer)."""
  if summariser not in SUMMARISERS:
    raise ValueError(f"summariser {summariser!r}: want one of {SUMMARISERS}")
  questions = [q["question"] for q in data.queries]
  top = thought_templates.top_answers(data, top_k=top_k)
  ctx, params = load_model(config, embedder)
  if summariser == "model":
    thoughts = summarise_with_model(ctx, params, questions, top, prompt=prompt,
                                    max_new_tokens=max_new_tokens)
  else:
    thoughts = [thought_templates.extractive_summary(found, quorum) if found else ""
                for found in top]
  return thought_templates.bank(questions, thoughts, embed_questions(ctx, params, questions))


# ------------------------------------------------------------------- fusion records


def fusion_records(data: routing.RoutingData, *, top_k: int = 5, alpha: float = 1.0,
                   beta: float = 0.0, min_correct: float = 1.0) -> list[dict]:
  """SFT records of the ``top_k`` best responses per query under (α, β) that are at
  least ``min_correct`` right (§3.4: fusion by SFT on the best responses)."""
  if top_k < 1:
    raise ValueError(f"fusion records: top_k={top_k}, at least 1")
  order_QC = routing.ranking(data, alpha, beta)
  out = []
  for q, query in enumerate(data.queries):
    for c in order_QC[q, :top_k]:
      if data.correct_QC[q, c] < min_correct:
        continue
      out.append({"question": query["question"], "solution": data.responses[q][c].strip(),
                  "answer": str(query["answer"]),
                  "provenance": {"candidate": data.candidates[c].name,
                                 "correct": float(data.correct_QC[q, c]),
                                 "tokens": float(data.tokens_QC[q, c])}})
  return out


def fusion_from_run(config: ml_collections.ConfigDict, path: str) -> dict[str, int]:
  """The SFT loop's fusion records (``sft.synthesis.kind='fusion'``): its starting
  weights (``init_checkpoint``) and its teacher's (``teacher.checkpoint``, if the run
  has one) answer ``sft.synthesis.problems`` (template, max_new_tokens, samples,
  temperature; ``train.seed``), and the ``top_k`` best responses per query under
  (``alpha``, ``beta``), right ones only unless ``filter='none'``, are written to
  ``path``; returns the counts."""
  section = config.sft.synthesis
  checkpoints = [config.init_checkpoint]
  if config.get("teacher") is not None and config.teacher.get("checkpoint", ""):
    checkpoints.append(config.teacher.checkpoint)
  candidates = [routing.Candidate(name=f"candidate{i}", checkpoint=c)
                for i, c in enumerate(checkpoints)]
  data = routing_data(config, candidates, read_queries(section.problems),
                      template=section.template, max_new_tokens=section.max_new_tokens,
                      samples=section.samples, temperature=section.temperature,
                      seed=config.train.seed)
  records = fusion_records(data, top_k=section.get("top_k", 1),
                           alpha=section.get("alpha", 1.0), beta=section.get("beta", 0.0),
                           min_correct=0.0 if section.filter == "none" else 1.0)
  if not records:
    raise ValueError(f"sft.synthesis.problems={section.problems}: no candidate answered "
                     "any of them right: no fusion records")
  counts = {"queries": len(data.queries), "records": len(records),
            **{f"right/{c.name}": int(data.correct_QC[:, i].sum())
               for i, c in enumerate(candidates)},
            **{f"chosen/{c.name}": sum(r["provenance"]["candidate"] == c.name
                                       for r in records) for c in candidates}}
  synthesize.write_records(path, records, counts)
  return counts


# ------------------------------------------------------------------------- routing


def route_figures(data: routing.RoutingData, routes: Sequence[str],
                  labels_Q: Optional[np.ndarray] = None) -> dict[str, float]:
  """Figures of the routed answers of ``data`` (held-out queries): pass@1, length,
  correct_length, pass@1/<kind>, the share routed to each candidate, each candidate's
  pass@1 alone, the oracle's (the best candidate per query), and with ``labels_Q`` the
  router's agreement with them."""
  q = len(data.queries)
  if len(routes) != q:
    raise ValueError(f"route figures: {len(routes)} routes for {q} queries")
  chosen = np.asarray([data.index(name) for name in routes], np.int64)
  right_Q = data.correct_QC[np.arange(q), chosen]
  tokens_Q = data.tokens_QC[np.arange(q), chosen]
  out = {"pass@1": float(right_Q.mean()), "length": float(tokens_Q.mean()),
         "correct_length": float((tokens_Q * right_Q).sum() / max(right_Q.sum(), 1.0)),
         "oracle@1": float(data.correct_QC.max(axis=1).mean())}
  kinds = np.asarray([str(query.get("kind", "")) for query in data.queries])
  for kind in sorted(set(kinds.tolist()) - {""}):
    out[f"pass@1/{kind}"] = float(right_Q[kinds == kind].mean())
  for c, name in enumerate(data.names):
    out[f"routed/{name}"] = float((chosen == c).mean())
    out[f"alone/{name}"] = float(data.correct_QC[:, c].mean())
  if labels_Q is not None:
    out["router_agreement"] = float((chosen == labels_Q).mean())
  return out


def _eval_settings(section: ml_collections.ConfigDict) -> dict:
  return {"template": section.template, "mode": section.thinking,
          "max_new_tokens": section.max_new_tokens, "batch_size": section.batch_size}


def _stage_routing(stage_: stages_lib.Stage, records: str, settings: Mapping,
                   max_records: int, report: Callable[[str], None]) -> routing.RoutingData:
  """One stage's routing data on ``records`` (greedy), cached in its entry's
  ``routing/``."""
  key = stages_lib.sha256_json({"records": stages_lib.file_sha256(records),
                                "max_records": max_records, **settings})
  path = os.path.join(stage_.directory, "routing", f"{key}.json")
  if os.path.exists(path):
    return routing.load(path)
  report(f"routing data of {stage_.name} on {records}")
  queries = read_queries(records)[:max_records or None]
  ctx, params = load_model(stage_.run, stage_.directory)
  correct, tokens, responses = answer_queries(
      ctx, params, queries, mode=settings["mode"], template=settings["template"],
      max_new_tokens=settings["max_new_tokens"], batch_size=settings["batch_size"])
  data = routing.RoutingData([routing.Candidate(stage_.name, stage_.directory,
                                                settings["mode"])], queries,
                             correct[:, None], tokens[:, None], [[r] for r in responses],
                             dict(settings))
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    routing.save(data, path)
  return data


def check_router(arm: str, section: ml_collections.ConfigDict,
                 stages: Mapping[str, ml_collections.ConfigDict],
                 eval_section: ml_collections.ConfigDict) -> None:
  """ConfigError naming the field of a claim's router arm that cannot run."""
  where = f"routers.{arm}"
  for field in ("stages", "records", "method", "alpha", "beta", "k", "hidden"):
    if field not in section:
      raise run_config.ConfigError(f"{where}.{field}: a router arm needs it (stages, "
                                   "records, method, alpha, beta, k, hidden)")
  if len(section.stages) < 2:
    raise run_config.ConfigError(f"{where}.stages={tuple(section.stages)}: a router "
                                 "chooses among at least two stages")
  for name in section.stages:
    if name not in stages:
      raise run_config.ConfigError(f"{where}.stages names {name!r}, not a stage; known: "
                                   f"{sorted(stages)}")
  if section.method not in routing.METHODS:
    raise run_config.ConfigError(f"{where}.method={section.method!r}: want one of "
                                 f"{routing.METHODS}")
  if not os.path.isfile(run_config.find_path(section.records)):
    raise run_config.ConfigError(f"{where}.records={section.records}: no such file")
  if eval_section.samples or evaluate.tool_calls(eval_section) or eval_section.get(
      "judge", "final") != "final":
    raise run_config.ConfigError(f"{where}: a router arm is evaluated greedily on final "
                                 "answers (eval.samples=0, no tools, judge='final')")


def evaluate_router(pipeline: Mapping[str, stages_lib.Stage], embedder: stages_lib.Stage,
                    section: ml_collections.ConfigDict,
                    eval_section: ml_collections.ConfigDict,
                    report: Callable[[str], None] = print) -> tuple[dict[str, float], float]:
  """(figures of the router ``section`` over ``section.stages`` (resolved in
  ``pipeline``) on ``eval_section``'s records, seconds it took: 0 when read back). The
  router learns the (α, β) labels of the stages' routing data on ``section.records``
  from ``embedder``'s embeddings; cached in ``embedder``'s entry."""
  settings = _eval_settings(eval_section)
  candidates = [pipeline[name] for name in section.stages]
  key = stages_lib.sha256_json({
      "eval": stages_lib.eval_key(eval_section), "candidates": [c.key for c in candidates],
      "router": json.loads(section.to_json_best_effort()),
      "records": stages_lib.file_sha256(run_config.find_path(section.records))})
  path = os.path.join(embedder.directory, "evals", f"router-{key}.json")
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)["figures"], 0.0
  started = time.time()
  train = combine([_stage_routing(c, run_config.find_path(section.records), settings, 0,
                                  report) for c in candidates])
  held_out = combine([_stage_routing(c, eval_section.records, settings,
                                     eval_section.max_records, report) for c in candidates])
  report(f"routing with {embedder.name}'s embeddings ({section.method})")
  ctx, params = load_model(embedder.run, embedder.directory)
  embed = lambda data: embed_questions(ctx, params, [q["question"] for q in data.queries],
                                       eval_section.batch_size)
  router = routing.Router.fit(embed(train), routing.labels(train, section.alpha, section.beta),
                              train.names, method=section.method, k=section.k,
                              hidden=tuple(section.hidden), seed=embedder.run.train.seed)
  figures = route_figures(held_out, router.predict(embed(held_out)),
                          routing.labels(held_out, section.alpha, section.beta))
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    workdir_lib.write_json(path, {"router": json.loads(section.to_json_best_effort()),
                                  "eval": json.loads(eval_section.to_json_best_effort()),
                                  "figures": figures})
  return figures, time.time() - started


# ------------------------------------------------------------------- command line

COMMANDS = ("data", "router", "route", "templates", "records")
# The flags each command needs (beside --config, which every command but records needs).
REQUIRED = {"data": ("candidates", "queries", "out"), "router": ("data", "embedder", "out"),
            "route": ("router", "embedder", "data"), "templates": ("data", "embedder", "out"),
            "records": ("data", "out")}


def run_command(command: str, config: Optional[ml_collections.ConfigDict]) -> dict:
  """Runs one command with the flags; returns what it prints (JSON)."""
  f = flags.FLAGS
  if command != "records" and config is None:
    raise ValueError(f"{command}: --config (the run config: model, tokenizer, mesh) is "
                     "required")
  missing = [name for name in REQUIRED[command] if not f[name].value]
  if missing:
    raise ValueError(f"{command}: --{missing[0]} is required")
  alpha, beta = routing.TRADEOFFS[f.tradeoff]
  if command == "data":
    data = routing_data(config, parse_candidates(f.candidates), read_queries(f.queries),
                        template=f.template, max_new_tokens=f.max_new_tokens,
                        samples=f.samples, temperature=f.temperature, seed=f.seed)
    routing.save(data, f.out)
    return {"queries": len(data.queries),
            "pass@1": dict(zip(data.names, data.correct_QC.mean(axis=0).tolist()))}
  data = routing.load(f.data)
  if command == "router":
    embeddings = embed_with(config, f.embedder, [q["question"] for q in data.queries])
    labels_Q = routing.labels(data, alpha, beta)
    router = routing.Router.fit(embeddings, labels_Q, data.names, method=f.method, k=f.k,
                                seed=f.seed, tradeoff=f.tradeoff)
    router.save(f.out)
    return {"queries": len(labels_Q), "train_agreement": float(
        np.mean(np.asarray([data.index(n) for n in router.predict(embeddings)]) == labels_Q))}
  if command == "route":
    router = routing.Router.load(f.router)
    embeddings = embed_with(config, f.embedder, [q["question"] for q in data.queries])
    return route_figures(data, router.predict(embeddings, allowed=data.names),
                         routing.labels(data, alpha, beta))
  if command == "templates":
    bank = make_templates(config, data, f.embedder, top_k=f.top_k, summariser=f.summariser,
                          prompt=f.summary_prompt)
    bank.save(f.out)
    return {"queries": len(data.queries), "templates": len(bank.templates)}
  records = fusion_records(data, top_k=f.top_k, alpha=alpha, beta=beta,
                           min_correct=0.0 if f.keep_wrong else 1.0)
  workdir_lib.write_jsonl(f.out, records)
  return {"queries": len(data.queries), "records": len(records)}


def main(argv: list[str]) -> None:
  if len(argv) != 2 or argv[1] not in COMMANDS:
    sys.exit(f"error: python -m train.fusion {{{','.join(COMMANDS)}}} --flags: one "
             f"command (got {argv[1:]})")
  with cli.entry_point(argv[:1]):
    config = _CONFIG.value
    if config is not None:
      run_config.check_ranges(config, run_config.RANGES)
    print(json.dumps(run_command(argv[1], config)))


if __name__ == "__main__":
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None, "The candidates' run config (model, tokenizer, mesh).",
      lock_config=True)
  flags.DEFINE_list("candidates", [], "data: checkpoint[:mode] per candidate (mode: on, "
                    "off or none).")
  flags.DEFINE_string("queries", None, "data: the query records (JSONL).")
  flags.DEFINE_string("data", None, "router, route, templates, records: routing data.")
  flags.DEFINE_string("out", None, "Where to write the result.")
  flags.DEFINE_string("embedder", None, "The checkpoint whose hidden states embed queries.")
  flags.DEFINE_string("router", None, "route: a saved router.")
  flags.DEFINE_enum("template", "text", list(prompts_lib.TEMPLATES), "Prompt template.")
  flags.DEFINE_integer("max_new_tokens", 64, "Completion budget.")
  flags.DEFINE_integer("samples", 1, "Samples per query and candidate (1: greedy).")
  flags.DEFINE_float("temperature", 0.0, "Sampling temperature (samples > 1).")
  flags.DEFINE_integer("seed", 0, "Sampling and router seed.")
  flags.DEFINE_enum("method", "knn", list(routing.METHODS), "Router classifier.")
  flags.DEFINE_integer("k", 5, "Neighbours of the knn router.")
  flags.DEFINE_enum("tradeoff", "performance", list(routing.TRADEOFFS),
                    "(α, β) of the labels: performance (1, 0), balanced (0.5, 0.5), cost "
                    "(0.2, 0.8).")
  flags.DEFINE_integer("top_k", 3, "templates, records: best answers per query.")
  flags.DEFINE_enum("summariser", "extractive", list(SUMMARISERS), "Template summariser.")
  flags.DEFINE_string("summary_prompt", SUMMARY_PROMPT, "The model summariser's prompt.")
  flags.DEFINE_bool("keep_wrong", False, "records: keep wrong responses among the top k.")
  flags.adopt_module_key_flags(cli)
  app.run(main, flags_parser=cli.flags_parser(
      "python -m train.fusion {data,router,route,templates,records} --flags"))
