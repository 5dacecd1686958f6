"""The curation pipelines on Beam's in-process runner: shards, counts by reason, resume,
dedup, decontamination and CrossThink blends (data/curate.py, data/curation/)."""

import io
import json
import os
import shutil

import pytest
from apache_beam.io import filesystem as beam_filesystem

from data import curate
from data import prompts
from data.curation import beam as curation_beam
from data.curation import crossthink
from data.curation import dedup

FOX = ("the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun "
       "all day long")


def write_jsonl(path, records, extra_lines=()):
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
    f.writelines(line + "\n" for line in extra_lines)
  return str(path)


def shard_texts(directory, name):
  return [d["text"] for d in curation_beam.read_shard(
      os.path.join(directory, name + curation_beam.SHARD_SUFFIX))]


def test_dedup_pipeline_drops_exact_and_near_duplicates_and_contamination(tmp_path):
  a = write_jsonl(tmp_path / "a.jsonl", [
      {"text": FOX}, {"text": "sums of digits and their totals in a table of small numbers"}])
  b = write_jsonl(tmp_path / "b.jsonl", [
      {"text": "  " + FOX.upper() + " "},                  # exact after normalising
      {"text": FOX.replace("long", "longer")},              # near: one word differs
      {"text": "an unrelated document about trees and rivers"},
      {"other": "no text field"}], extra_lines=["{not json"])
  empty = write_jsonl(tmp_path / "c.jsonl", [])
  evals = write_jsonl(tmp_path / "eval.jsonl", [
      {"question": "What are the totals in a table of small numbers?", "answer": "7"}])
  config = curate.default_config()
  config.dedup.update(bands=16, rows=4, threshold=0.7)
  config.decontaminate.update(eval_records=(evals,), ngram=5)
  out = str(tmp_path / "out")
  summary = curate.run("dedup", [a, b, empty], out, config, progress=False)

  dedup_counts = summary["stages"]["dedup"]
  assert dedup_counts["dropped"] == {"empty_shard": 1, "exact_duplicate": 1,
                                     "malformed": 1, "near_duplicate": 1, "no_text": 1}
  assert (dedup_counts["inputs"], dedup_counts["outputs"]) == (7, 3)
  details = [json.loads(l) for l in open(os.path.join(out, "dedup", "b.dropped.jsonl"))]
  assert [(d["reason"], d["duplicate_of"]) for d in details] == [
      ("exact_duplicate", ["a", 0]), ("near_duplicate", ["a", 0])]
  decontaminated = summary["stages"]["decontaminate"]
  assert decontaminated["dropped"]["contaminated"] == 1
  report = json.loads(open(os.path.join(out, "decontaminate", "a.dropped.jsonl")).readline())
  assert report["eval_record"] == 0 and report["ngram"] == "a table of small numbers"
  assert shard_texts(os.path.join(out, "decontaminate"), "a") == [FOX]
  assert shard_texts(os.path.join(out, "decontaminate"), "b") == [
      "an unrelated document about trees and rivers"]
  assert summary["final"] == os.path.join(out, "decontaminate", "*.array_record")
  assert json.load(open(os.path.join(out, "summary.json"))) == summary


def test_a_rerun_skips_finished_shards_and_redoes_unfinished_ones(tmp_path):
  inputs = [write_jsonl(tmp_path / f"{name}.jsonl", [{"text": f"{name} {i}"} for i in range(3)])
            for name in ("a", "b", "c")]
  log = tmp_path / "processed.txt"     # Beam pickles the stage: calls leave a file
  seen = lambda: log.read_text().split() if log.exists() else []

  def process(path, counts):
    with open(log, "a") as f:
      f.write(curation_beam.shard_name(path) + "\n")
    for record in crossthink.read_jsonl(path):
      counts.inputs += 1
      yield record

  stage = curation_beam.ShardStage("copy", process)
  out = str(tmp_path / "out")
  first = curation_beam.run_pipeline([stage], inputs, out, progress=False)
  assert sorted(seen()) == ["a", "b", "c"] and first["stages"]["copy"]["outputs"] == 9
  # A run killed after shard b's documents but before its counts: b is unfinished.
  os.remove(os.path.join(out, "copy", "b" + curation_beam.COUNTS_SUFFIX))
  log.unlink()
  again = curation_beam.run_pipeline([stage], inputs, out, progress=False)
  assert seen() == ["b"] and again == first
  assert not [f for f in os.listdir(os.path.join(out, "copy")) if ".tmp" in f]


def test_a_failing_shard_leaves_the_finished_ones(tmp_path):
  inputs = [write_jsonl(tmp_path / f"{name}.jsonl", [{"text": name}]) for name in ("a", "b")]

  def process(path, counts):
    counts.inputs += 1
    if path.endswith("b.jsonl"):
      raise RuntimeError("worker lost")
    yield {"text": "a"}

  out = str(tmp_path / "out")
  with pytest.raises(Exception, match="worker lost"):
    curation_beam.run_pipeline([curation_beam.ShardStage("s", process)], inputs, out,
                               progress=False)
  stage_dir = os.path.join(out, "s")
  assert curation_beam.is_finished(stage_dir, "a") or not os.listdir(stage_dir)
  assert not curation_beam.is_finished(stage_dir, "b")
  assert not os.path.exists(os.path.join(stage_dir, "b" + curation_beam.SHARD_SUFFIX))


def test_minhash_estimates_jaccard():
  lsh = dedup.MinHashLSH(bands=32, rows=8, shingle=2)
  same, near, far = (lsh.signature(t) for t in (FOX, FOX.replace("warm", "hot"),
                                                 "nothing in common with that sentence"))
  base = lsh.signature(FOX)
  assert (same == base).all()
  assert 0.6 < (near == base).mean() < 0.95 and (far == base).mean() < 0.1
  with pytest.raises(ValueError, match="threshold"):
    dedup.MinHashLSH(threshold=0.0)


CT_RECORDS = [
    {"question": "What is 2 + 3?", "answer": "5", "source": "math_synth"},
    {"question": "Which of the following is a bird?", "options": ["oak", "robin"],
     "answer": "B", "source": "mmlu"},
    {"question": "What kind of thing is a robin?", "options": ["bird", "tree", "fish", "tool"],
     "answer": "bird", "source": "mmlu"},
    {"question": "Why is the sky blue?", "answer": " ".join(["word"] * 12), "source": "web"},
    {"question": "What is the capital of France?", "answer": "Paris", "source": "web"},
    {"question": "Pick one", "options": ["a", "b"], "answer": "Z", "source": "mmlu"},
    {"question": "", "answer": "x", "source": "web"},
    {"question": "What is the integral?", "answer": "it is the area under the curve",
     "source": "math_synth"},
]


def test_crossthink_templates_and_filters():
  made = [crossthink.templated(r) for r in CT_RECORDS]
  assert made[0] == ([{"kind": "math", "question": "What is 2 + 3?", "answer": "5",
                       "format": "math", "source": "math_synth", "domain": "math"}], [])
  assert [m["format"] for m in made[1][0]] == ["mcq"] and made[1][1] == ["needs_options"]
  mcq, open_form = made[2][0]
  assert (mcq["answer"], open_form["answer"], open_form["kind"]) == ("A", "bird", "open")
  assert [m[1] for m in made[3:]] == [["long_answer"], [], ["unverifiable_answer"],
                                      ["missing_field"], ["unverifiable_answer"]]
  assert prompts.to_open_ended(mcq) == {"kind": "open", "question": mcq["question"],
                                        "answer": "bird"}


def test_crossthink_pipeline_writes_each_recipe_as_grpo_records(tmp_path):
  # 40 math and 20 general questions, each general one in both formats.
  records = [{"question": f"What is {i} + 1?", "answer": str(i + 1), "source": "math_synth"}
             for i in range(40)]
  records += [{"question": f"Which animal is number {i}?", "options": ["cat", "dog"],
               "answer": "A", "source": "mmlu"} for i in range(20)]
  qa = write_jsonl(tmp_path / "qa.jsonl", records, extra_lines=["not json"])
  config = curate.default_config()
  config.crossthink.recipes.more_general.size = 30
  config.crossthink.recipes.source_only = dict(kind="source_only", source="mmlu")
  out = str(tmp_path / "out")
  summary = curate.run("crossthink", [qa], out, config, progress=False)
  template = summary["stages"]["template"]
  assert template["dropped"] == {"malformed": 1}
  assert crossthink.pool_counts(template) == {"math/math/math_synth": 40,
                                              "general/mcq/mmlu": 20, "general/open/mmlu": 20}
  read = lambda name: [json.loads(l) for l in open(summary["blends"][name]["path"])]
  assert len(read("natural")) == 80
  assert {r["kind"] for r in read("format_only")} == {"open"}
  assert {r["source"] for r in read("source_only")} == {"mmlu"}
  general = read("more_general")
  share = sum(r["domain"] == "general" for r in general) / len(general)
  assert 20 <= len(general) <= 40 and share > 0.5      # 2/3 of 30 wanted, by hash draws
  mcq = next(r for r in read("natural") if r["kind"] == "mcq")
  assert set(mcq) == {"question", "answer", "kind", "options", "source", "domain"}
  # Resumable and reproducible: a rerun draws the same records.
  assert curate.run("crossthink", [qa], out, config, progress=False) == summary
  with pytest.raises(ValueError, match="crossthink.recipes.bad"):
    config.crossthink.recipes.bad = dict(kind="format_only", format="essay")
    curate.run("crossthink", [qa], out, config, progress=False)


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match="quality.scorer='nomodule'"):
    curate.load_plugin("nomodule", "quality.scorer")
  with pytest.raises(ValueError, match="quality.scorer='data.curate:missing'"):
    curate.load_plugin("data.curate:missing", "quality.scorer")
  with pytest.raises(ValueError, match="--pipeline='nope'"):
    curate.stages("nope", curate.default_config())
  with pytest.raises(ValueError, match="no input shards"):
    curation_beam.run_pipeline([], [], "/tmp/unused")


MATH_PAGE = "Let $x^2 + y^2 = z^2$. Then $\\frac{a}{b} = c$ and $\\sum_i i = n(n+1)/2$."
JUNK_PAGE = "Home | About | Contact | Subscribe to our newsletter | Cookie settings"


def test_quality_classifier_trained_here_scores_and_filters(tmp_path):
  from train import quality      # pylint: disable=g-import-not-at-top
  labelled = [{"text": MATH_PAGE.replace("x", v), "score": 5} for v in "abcdefgh"]
  labelled += [{"text": JUNK_PAGE + f" page {i}", "score": 0} for i in range(8)]
  path = write_jsonl(tmp_path / "labelled.jsonl", labelled)
  texts, scores = quality.read_labelled(path)
  classifier = quality.train_classifier(texts, scores, dim=512, steps=100)
  saved = str(tmp_path / "quality.npz")
  classifier.save(saved)
  scorer = quality.load_scorer(saved)
  math_score, junk_score = scorer([MATH_PAGE.replace("x", "q"), JUNK_PAGE + " page 99"])
  assert math_score > 4 and junk_score < 1
  docs = write_jsonl(tmp_path / "docs.jsonl", [{"text": MATH_PAGE}, {"text": JUNK_PAGE}])
  config = curate.default_config()
  config.quality.update(scorer="train.quality:load_scorer", args=dict(path=saved))
  stage = curate.quality_stage(config.quality)
  out = str(tmp_path / "out")
  counts = curation_beam.run_stage(
      curation_beam.ShardStage("copy", lambda p, c: iter([])), [], out, progress=False)
  assert counts["shards"] == 0
  copied = curation_beam.run_pipeline(
      [curation_beam.GlobalStage("read", dedup.Deduplicate(None),
                                 reads=lambda p: crossthink.read_jsonl(p)), stage],
      [docs], out, progress=False)
  assert copied["stages"]["quality"]["dropped"] == {"low_quality": 1}
  [kept] = curation_beam.read_shard(os.path.join(out, "quality", "docs.array_record"))
  assert kept["text"] == MATH_PAGE and kept["quality"] > 4
  bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "x", "score": 9}])
  with pytest.raises(ValueError, match="bad.jsonl:1: .*integer 'score'"):
    quality.read_labelled(bad)


def test_llm_cleanup_rewrites_pages_piece_by_piece(reference_run):
  from train import llm_cleanup  # pylint: disable=g-import-not-at-top
  words = lambda text: len(text.split())
  page = "\n\n".join(["one two three", "four five", "six seven eight nine ten eleven"])
  assert llm_cleanup.pieces(page, words, 5) == ["one two three\n\nfour five",
                                                "six seven eight nine ten ", "eleven"]
  workdir, _ = reference_run("pretrain")
  rewrite = llm_cleanup.load_rewriter(str(workdir), piece_tokens=8, max_new_tokens=4,
                                      batch_size=4)
  rewritten = rewrite([page, "a short page"])
  assert len(rewritten) == 2 and all(isinstance(text, str) for text in rewritten)
  with pytest.raises(FileNotFoundError, match="cleanup.args.checkpoint"):
    llm_cleanup.load_rewriter("/nonexistent")


def test_cc_math_pipeline_keeps_the_math_of_a_generated_crawl(tmp_path):
  """WARC shards of generated math pages (with a duplicate page, a 404, a PDF, a page
  without text and a truncated record) → documents with every equation as LaTeX."""
  from data.curation import math_pages  # pylint: disable=g-import-not-at-top
  from data.curation import warc  # pylint: disable=g-import-not-at-top
  pages = math_pages.pages(seed=3, count=4)
  html = lambda page: (page.url, page.html.encode("utf-8"), "text/html; charset=utf-8")
  first = str(tmp_path / "crawl-0.warc.gz")
  warc.write_warc(first, [html(pages[0]), html(pages[1]),
                          ("https://x.example.org/doc.pdf", b"%PDF-1.4", "application/pdf"),
                          ("https://x.example.org/empty", b"<html><body></body></html>",
                           "text/html")])
  second = str(tmp_path / "crawl-1.warc")
  with open(second, "wb") as f:
    f.write(warc.response_record(pages[2].url, pages[2].html.encode(), "text/html"))
    f.write(warc.response_record("https://copy.example.org/", pages[0].html.encode(),
                                 "text/html"))
    f.write(warc.response_record("https://x.example.org/gone", b"<p>gone</p>", "text/html",
                                 status=404, reason="Not Found"))
    f.write(warc.response_record(pages[3].url, pages[3].html.encode(), "text/html")[:300])
  evals = write_jsonl(tmp_path / "eval.jsonl", [{"question": "unrelated words " * 4}])
  config = curate.default_config()
  config.decontaminate.eval_records = (evals,)
  config.extract.renderer = "lynx" if shutil.which("lynx") else "resiliparse"
  out = str(tmp_path / "out")
  summary = curate.run("cc_math", [first, second], out, config, progress=False)

  extract = summary["stages"]["extract"]
  assert extract["dropped"] == {"http_error": 1, "no_text": 1, "not_html": 1,
                                "truncated_record": 1}
  assert extract["outputs"] == 4 and extract["stats"]["equations"] >= 4 * 8
  assert summary["stages"]["dedup"]["dropped"] == {"exact_duplicate": 1}
  documents = [d for shard in curation_beam.shard_paths(os.path.join(out, "decontaminate"))
               for d in curation_beam.read_shard(shard)]
  assert [d["url"] for d in documents] == [pages[0].url, pages[1].url, pages[2].url]
  for page, document in zip(pages, documents):
    assert all(equation in document["text"] for equation in page.equations)
    assert all(code in document["text"] for code in page.code)
    assert not any(text in document["text"] for text in page.boilerplate)


class _Bucket(io.BytesIO):
  """An object being uploaded to the in-memory store: stored when closed."""

  def __init__(self, store, path):
    super().__init__()
    self._store, self._path = store, path

  def close(self):
    if not self.closed:
      self._store[self._path] = self.getvalue()
    super().close()


class MemoryFileSystem(beam_filesystem.FileSystem):
  """An object store in this process's memory (scheme memtest://), standing in for gs://."""

  OBJECTS: dict = {}

  @classmethod
  def scheme(cls):
    return "memtest"

  def join(self, base, *paths):
    return "/".join([base.rstrip("/"), *paths])

  def split(self, path):
    head, _, tail = path.rpartition("/")
    return head, tail

  def has_dirs(self):
    return False

  def mkdirs(self, path):
    del path

  def _list(self, dir_or_prefix):
    for path, data in sorted(self.OBJECTS.items()):
      if path.startswith(dir_or_prefix):
        yield beam_filesystem.FileMetadata(path, len(data))

  def create(self, path, mime_type="application/octet-stream", compression_type="auto"):
    return _Bucket(self.OBJECTS, path)

  def open(self, path, mime_type="application/octet-stream", compression_type="auto"):
    if path not in self.OBJECTS:
      raise OSError(f"{path}: no such object")
    return io.BytesIO(self.OBJECTS[path])

  def copy(self, source_file_names, destination_file_names):
    for source, destination in zip(source_file_names, destination_file_names):
      self.OBJECTS[destination] = self.OBJECTS[source]

  def rename(self, source_file_names, destination_file_names):
    self.copy(source_file_names, destination_file_names)
    self.delete(source_file_names)

  def exists(self, path):
    return path in self.OBJECTS

  def size(self, path):
    return len(self.OBJECTS[path])

  def last_updated(self, path):
    return 0.0

  def checksum(self, path):
    return str(len(self.OBJECTS[path]))

  def metadata(self, path):
    return beam_filesystem.FileMetadata(path, len(self.OBJECTS[path]))

  def delete(self, paths):
    for path in paths:
      self.OBJECTS.pop(path, None)


def test_a_pipeline_reads_and_writes_an_object_store(tmp_path):
  """Input, shards, counts and summary in a bucket (Beam's FileSystems, as on Dataflow)."""
  from data.curation import math_pages, storage, warc  # pylint: disable=g-import-not-at-top
  pages = math_pages.pages(seed=5, count=2)
  local = str(tmp_path / "crawl.warc.gz")
  warc.write_warc(local, [(p.url, p.html.encode(), "text/html") for p in pages])
  MemoryFileSystem.OBJECTS.clear()
  MemoryFileSystem.OBJECTS["memtest://bucket/in/crawl.warc.gz"] = open(local, "rb").read()
  inputs = storage.glob("memtest://bucket/in/*.warc.gz")
  config = curate.default_config()
  config.extract.renderer = "resiliparse"
  summary = curate.run("cc_math", inputs, "memtest://bucket/out", config, progress=False)
  assert summary["stages"]["extract"]["outputs"] == 2
  assert storage.read_json("memtest://bucket/out/summary.json") == summary
  assert summary["final"] == "memtest://bucket/out/dedup/*.array_record"
  [shard] = curation_beam.shard_paths("memtest://bucket/out/dedup")
  texts = [d["text"] for d in curation_beam.read_shard(shard)]
  assert all(equation in text for page, text in zip(pages, texts) for equation in page.equations)
  assert not [path for path in MemoryFileSystem.OBJECTS if ".tmp" in path]
  assert curate.run("cc_math", inputs, "memtest://bucket/out", config, progress=False) == summary
