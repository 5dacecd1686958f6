"""Document sources: text, JSONL, ArrayRecord, tfds, and clear errors on bad input."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data import config as config_lib
from data import sources


class TinyTextDataset(tfds.core.GeneratorBasedBuilder):
  """A tfds dataset prepared locally (no download, no tensorflow)."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "text": tfds.features.Text(), "number": tfds.features.Scalar(np.int32)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(12)}

  def _generate_examples(self, count):
    for i in range(count):
      yield i, {"text": f"document {i}", "number": i}


def _all(dataset):
  return [dataset[i] for i in range(len(dataset))]


def test_text_documents_are_blank_line_separated(tmp_path):
  (tmp_path / "a.txt").write_text("first line\nsame document\n\n\n  \nsecond\n\nthird\n")
  (tmp_path / "b.txt").write_text("fourth")
  documents = _all(sources.open_source(config_lib.source_config("text", str(tmp_path / "*.txt"))))
  assert documents == [("", "first line\nsame document"), ("", "second"), ("", "third"),
                       ("", "fourth")]


def test_jsonl_field_and_prompt_field(tmp_path):
  path = tmp_path / "data.jsonl"
  path.write_text('{"q": "1+1?", "a": "2"}\n\n{"q": "2+2?", "a": "4"}\n')
  plain = sources.open_source(config_lib.source_config("jsonl", str(path), field="a"))
  assert _all(plain) == [("", "2"), ("", "4")]
  sft = sources.open_source(config_lib.source_config("jsonl", str(path), field="a",
                                                     prompt_field="q"))
  assert _all(sft) == [("1+1?\n", "2"), ("2+2?\n", "4")]


def test_array_record_text_and_json_records(tmp_path):
  text_path, json_path = str(tmp_path / "t.array_record"), str(tmp_path / "j.array_record")
  assert sources.write_array_record(text_path, ["alpha", "béta"]) == 2
  sources.write_array_record(json_path, [{"body": "gamma"}, {"body": "delta"}])
  text = sources.open_source(config_lib.source_config("array_record", text_path, field=""))
  assert _all(text) == [("", "alpha"), ("", "béta")]
  records = sources.open_source(config_lib.source_config("array_record", json_path, field="body"))
  assert _all(records) == [("", "gamma"), ("", "delta")]
  with pytest.raises(ValueError, match=r"t.array_record record 0: invalid JSON"):
    sources.open_source(config_lib.source_config("array_record", text_path, field="body"))
  with pytest.raises(ValueError, match=r"j.array_record record 0: missing field 'text'"):
    sources.open_source(config_lib.source_config("array_record", json_path, field="text"))


def test_tfds_source_prepared_locally(tmp_path):
  TinyTextDataset(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  source = config_lib.source_config("tfds", str(tmp_path), tfds_name="tiny_text_dataset")
  documents = _all(sources.open_source(source))
  assert sorted(documents) == sorted(("", f"document {i}") for i in range(12))
  source.field = "number"
  with pytest.raises(ValueError, match="tiny_text_dataset .*field 'number' is int"):
    sources.open_source(source)
  (tmp_path / "elsewhere").mkdir()
  source = config_lib.source_config("tfds", str(tmp_path / "elsewhere"),
                                    tfds_name="tiny_text_dataset")
  with pytest.raises(FileNotFoundError, match="elsewhere: the dataset is not prepared"):
    sources.open_source(source)


def test_bad_inputs_name_the_file_line_and_field(tmp_path):
  def open_(format_, path, **kwargs):
    return sources.open_source(config_lib.source_config(format_, str(path), **kwargs))

  with pytest.raises(FileNotFoundError, match="missing.txt"):
    open_("text", tmp_path / "missing.txt")
  (tmp_path / "blank.txt").write_text("\n  \n\n")
  with pytest.raises(ValueError, match="blank.txt: no documents"):
    open_("text", tmp_path / "blank.txt")
  (tmp_path / "empty.jsonl").write_text("")
  with pytest.raises(ValueError, match="empty.jsonl: no records"):
    open_("jsonl", tmp_path / "empty.jsonl")
  (tmp_path / "rows.jsonl").write_text(json.dumps({"text": "ok"}) + "\n" +
                                       json.dumps({"body": "no text"}) + "\n")
  with pytest.raises(ValueError, match=r"rows.jsonl:2: missing field 'text'"):
    open_("jsonl", tmp_path / "rows.jsonl")
  with pytest.raises(ValueError, match=r"rows.jsonl:1: missing field 'question'"):
    open_("jsonl", tmp_path / "rows.jsonl", prompt_field="question")
  (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n{"text": \n')
  with pytest.raises(ValueError, match=r"broken.jsonl:2: invalid JSON"):
    open_("jsonl", tmp_path / "broken.jsonl")
  (tmp_path / "number.jsonl").write_text('{"text": 3}\n')
  with pytest.raises(ValueError, match=r"number.jsonl:1: field 'text' is int, not text"):
    open_("jsonl", tmp_path / "number.jsonl")
  with pytest.raises(FileNotFoundError, match="none.array_record"):
    open_("array_record", tmp_path / "none.array_record")
  sources.write_array_record(str(tmp_path / "empty.array_record"), [])
  with pytest.raises(ValueError, match="empty.array_record: no documents"):
    open_("array_record", tmp_path / "empty.array_record")
  with pytest.raises(ValueError, match="unknown source format 'csv'"):
    config_lib.source_config("csv", "x.csv")
