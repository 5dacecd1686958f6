"""The corpora of the ``cc_math_extraction`` claim (Nemotron-CC-Math, arXiv 2508.15096, in
miniature), built by the claims framework's ``datasets`` section
(``configs/claims/cc_math_extraction.py``).

``extraction_corpora(directory, ...)`` writes a crawl of generated math pages
(``math_pages.pages``) as WARC shards, runs the ``cc_math`` pipeline over it
(``data/curate.py``: extraction with ``renderer``, then dedup) and writes, for the same
pages:

  extracted.jsonl   the pipeline's documents ({"text"})
  plain.jsonl       each page's plain HTML-to-text conversion (``html_text.plain_text``:
                    what a generic extractor keeps)
  heldout_math.txt  held-out documents of the same kind of facts in LaTeX
                    (``math_pages.held_out_text``, other numbers), one per blank-line
                    separated paragraph: the claim's held-out math
  heldout_code.txt  the code blocks of other generated pages: text both conversions keep
                    verbatim (the claim's competence gate)

and returns the figures of the first half of the claim: of the pages' ground-truth
equations (one in each of ``math_pages.STYLES`` per page), the share each corpus holds
exactly (``equations_recovered``).
"""

from __future__ import annotations

import json
import os

from data import curate
from data import files
from data.curation import beam as curation_beam
from data.curation import html_text
from data.curation import math_pages
from data.curation import warc

SHARDS = 4
HELD_OUT_SEED_OFFSET = 1_000_003   # held-out pages and documents: seeds no crawl uses


def extraction_corpora(directory: str, *, pages: int, heldout: int, seed: int = 0,
                       renderer: str = "lynx") -> dict:
  crawl = math_pages.pages(seed, pages)
  warc_dir = os.path.join(directory, "warc")
  os.makedirs(warc_dir)
  for shard in range(SHARDS):
    warc.write_warc(os.path.join(warc_dir, f"crawl-{shard}.warc.gz"),
                    [(p.url, p.html.encode("utf-8"), "text/html; charset=utf-8")
                     for p in crawl[shard::SHARDS]])
  config = curate.default_config()
  config.extract.renderer = renderer
  summary = curate.run("cc_math", sorted(os.path.join(warc_dir, name)
                                         for name in os.listdir(warc_dir)),
                       os.path.join(directory, "curated"), config, progress=False)
  extracted = {d["url"]: d["text"] for path in curation_beam.shard_paths(
      os.path.dirname(summary["final"])) for d in curation_beam.read_shard(path)}
  kept = [p for p in crawl if p.url in extracted]
  plain = {p.url: html_text.plain_text(p.html) for p in kept}
  files.write_jsonl(os.path.join(directory, "extracted.jsonl"),
                    [{"text": extracted[p.url]} for p in kept])
  files.write_jsonl(os.path.join(directory, "plain.jsonl"), [{"text": plain[p.url]} for p in kept])
  held_seed = seed + HELD_OUT_SEED_OFFSET
  with files.atomic_file(os.path.join(directory, "heldout_math.txt")) as f:
    f.write("\n\n".join(math_pages.held_out_text(held_seed, heldout)) + "\n")
  with files.atomic_file(os.path.join(directory, "heldout_code.txt")) as f:
    f.write("\n\n".join(code.replace("\n\n", "\n") for p in math_pages.pages(held_seed, heldout)
                        for code in p.code) + "\n")
  total = sum(len(p.equations) for p in kept)
  recovered = {name: sum(equation in texts[p.url] for p in kept for equation in p.equations)
               for name, texts in (("extracted", extracted), ("plain", plain))}
  return {
      "pages": len(crawl), "pages_kept": len(kept), "renderer": renderer,
      "pipeline": {stage: {k: v for k, v in counts.items() if k != "stats"}
                   for stage, counts in summary["stages"].items()},
      "equations": total,
      "equations_recovered": {name: round(n / max(total, 1), 4) for name, n in recovered.items()},
      "chars": {"extracted": sum(map(len, extracted.values())),
                "plain": sum(map(len, plain.values()))},
  }


if __name__ == "__main__":    # a look at what the claim trains on
  import sys  # pylint: disable=g-import-not-at-top
  print(json.dumps(extraction_corpora(sys.argv[1], pages=16, heldout=4), indent=2))
