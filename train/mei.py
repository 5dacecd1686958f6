"""MEI with a model (arXiv 2406.14654): each gold mention's major entity by multiple
choice, then MEI's per-entity, macro and micro scores (``data/mei.py``).

As in the paper's LLM setting the mention spans are given (gold mention detection): for
every mention of a record the model is asked which major entity the marked mention
refers to (``data.mei.mention_question``: the entities' names, then "None of the major
entities"), greedily, under the eval section's template and thinking toggle (the
'crossthink' template shows the options). The reply's final answer
(``data.answers.final_answer``) is read as an option letter (``answers.choice_letter``);
"none", no letter or a letter past the options predicts no major entity.

Every process generates every question's reply (``all_rows``), so every process scores
the same predictions.
"""

from __future__ import annotations

import dataclasses

from data import answers
from data import mei as mei_lib
from data import prompts as prompts_lib
from model import generate as generate_lib
from train import generation
from train.loops import Context


@dataclasses.dataclass(frozen=True)
class MeiTask:
  """The MEI records of an eval section and one prompt per (record, mention)."""
  records: list[dict]
  plan: list[tuple[int, int]]   # (record index, mention index) of each prompt
  prompts: list[list[int]]

  @classmethod
  def create(cls, path: str, tokenizer, *, template: str, thinking: str,
             max_records: int = 0) -> "MeiTask":
    """Reads ``path`` (errors name the line and field) and builds the prompts."""
    records = mei_lib.read_records(path)[:max_records or None]
    plan, prompts = [], []
    for i, record in enumerate(records):
      if len(record["entities"]) > 9:
        raise ValueError(f"eval.mei_records={path}: record {i} has "
                         f"{len(record['entities'])} entities; at most 9 (the options, with "
                         "none, are at most 10)")
      for j, mention in enumerate(record["mentions"]):
        plan.append((i, j))
        prompts.append(prompts_lib.prompt_ids(mei_lib.mention_question(record, mention),
                                              tokenizer, template=template,
                                              thinking=thinking))
    if not prompts:
      raise ValueError(f"eval.mei_records={path}: no mentions to resolve")
    return cls(records, plan, prompts)

  def predict(self, ctx: Context, params, rng, *, sampling: generate_lib.SamplingConfig,
              batch_size: int) -> tuple[list[dict], int]:
    """(the predicted records: each gold span with the entity the model picked, the
    number of replies without a valid letter); a collective."""
    replies = generation.generate_in_chunks(
        ctx, params, self.prompts, list(range(len(self.prompts))), rng, sampling=sampling,
        chunk_rows=batch_size, all_rows=True)
    predicted = [dict(record, mentions=[dict(m, entity=None) for m in record["mentions"]])
                 for record in self.records]
    invalid = 0
    for row, ids, _ in replies:
      i, j = self.plan[row]
      reply = answers.final_answer(ctx.tokenizer.decode(ids.tolist()))
      letter = answers.choice_letter(reply)
      options = len(self.records[i]["entities"]) + 1
      invalid += letter is None or letter not in prompts_lib.option_letters(options)
      predicted[i]["mentions"][j]["entity"] = mei_lib.predicted_entity(self.records[i], letter)
    return predicted, invalid

  def __call__(self, ctx: Context, params, rng, *, sampling: generate_lib.SamplingConfig,
               batch_size: int) -> dict[str, float]:
    """The figures ``data.mei.figures`` names and ``mei/invalid`` (the share of replies
    without a valid option letter)."""
    predicted, invalid = self.predict(ctx, params, rng, sampling=sampling,
                                      batch_size=batch_size)
    scores = mei_lib.mei_scores(self.records, predicted)
    return {**mei_lib.figures(scores), "mei/invalid": invalid / len(self.prompts)}
