r"""Nemotron-CC-Math's LLM cleanup (arXiv 2508.15096): a language model rewrites each
rendered page, removing boilerplate, writing its math in LaTeX and keeping its code; the
paper uses Phi-4, here any of our checkpoints (a run's workdir: its ``config.json``
gives the model and tokenizer).

  python -m data.curate --pipeline=cc_math --input=... --output=... \
      --config.cleanup.rewriter=train.llm_cleanup:load_rewriter \
      --config.cleanup.args.checkpoint=runs/cleaner

A page is cut at paragraph breaks into pieces of at most ``piece_tokens`` tokens (a
longer paragraph is a piece of its own, cut at the limit), each piece is written into
``prompt`` (``{text}``) and the model's greedy continuation replaces it; the pieces are
joined again with blank lines. The rewrites of a batch of pages run as one batched
generation (``train.generation.complete_texts``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import ml_collections

from train import fusion
from train import generation

PROMPT = ("Rewrite the web page below as clean text: remove navigation and boilerplate, "
          "write every equation in LaTeX between $ signs, keep code as it is.\n\n"
          "Page:\n{text}\n\nClean text:\n")


def pieces(text: str, count_tokens: Callable[[str], int], piece_tokens: int) -> list[str]:
  """The page cut at blank lines into runs of paragraphs of at most ``piece_tokens``
  tokens each (a longer paragraph alone, cut by characters in proportion)."""
  out, current = [], []
  for paragraph in (p for p in text.split("\n\n") if p.strip()):
    size = count_tokens(paragraph)
    if size > piece_tokens:
      out += ["\n\n".join(current)] if current else []
      current = []
      step = max(1, len(paragraph) * piece_tokens // size)
      out += [paragraph[i:i + step] for i in range(0, len(paragraph), step)]
      continue
    if current and count_tokens("\n\n".join(current + [paragraph])) > piece_tokens:
      out.append("\n\n".join(current))
      current = []
    current.append(paragraph)
  return out + (["\n\n".join(current)] if current else [])


def load_rewriter(checkpoint: str, prompt: str = PROMPT, piece_tokens: int = 0,
                  max_new_tokens: int = 0, batch_size: int = 16
                  ) -> Callable[[Sequence[str]], list[str]]:
  """The cleanup stage's plug-in: pages → their rewrites by ``checkpoint`` (a run's
  workdir). ``piece_tokens`` (0: what leaves room for as many new tokens in the run's
  ``train.seq_len``) and ``max_new_tokens`` (0: 1.5 × the piece) size each rewrite."""
  path = os.path.join(checkpoint, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"cleanup.args.checkpoint={checkpoint}: no run config.json "
                            "there (a run's workdir)")
  with open(path, encoding="utf-8") as f:
    config = ml_collections.ConfigDict(json.load(f))
  if "{text}" not in prompt:
    raise ValueError(f"cleanup.args.prompt={prompt!r}: needs a {{text}} field")
  ctx, params = fusion.load_model(config, checkpoint)
  frame = len(ctx.tokenizer.encode(prompt.format(text="")))
  piece_tokens = piece_tokens or max(16, (config.train.seq_len - frame) * 2 // 5)
  max_new_tokens = max_new_tokens or piece_tokens * 3 // 2
  count = lambda text: len(ctx.tokenizer.encode(text))

  def rewrite(texts: Sequence[str]) -> list[str]:
    cut = [pieces(text, count, piece_tokens) for text in texts]
    flat = [prompt.format(text=piece) for page in cut for piece in page]
    done = iter(generation.complete_texts(ctx, params, flat, max_new_tokens=max_new_tokens,
                                          batch_size=batch_size))
    return ["\n\n".join(r for r in (next(done) for _ in page) if r) for page in cut]

  return rewrite
