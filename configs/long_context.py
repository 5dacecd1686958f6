r"""Adapt a short-context checkpoint to long inputs (arXiv 2209.10052): pooling-augmented
blockwise attention, masked-span prediction, randomly concatenated short documents.

  python -m train.main --config=configs/tiny_hybrid.py --workdir=runs/tiny
  python -m train.main --config=configs/long_context.py --workdir=runs/tiny_long \
      --config.init_checkpoint=runs/tiny

The paper's recipe, on the README's tiny hybrid (trained at 128 tokens) taken to 1024:

  * attention: every attention layer local in blocks of the checkpoint's trained length
    (``local_block``), the top ones (here the hybrid's one attention layer) also attending
    to keys and values average-pooled over windows of 18 every 12 slots of completed
    blocks (``layer_attention``; ``model/blockwise.py``). No new weights: the adapted
    model loads the checkpoint as it is (the spans are run choices, as the kernels are).
  * objective: masked-span prediction (``data.span_corruption``: 15% of the tokens in
    spans of mean 3, 8 or 64, each replaced by a sentinel, the spans appended as targets,
    the loss on them), on half the rows; the other half plain next-token prediction.
  * data: the shipped English, 12 random documents joined into one (``concatenate``), so
    a row is one long document (the paper's best corpus: concatenated short documents).

``model.max_seq_len`` refuses longer inputs with a clear error. For a Hugging Face
checkpoint set ``--config.model`` to its sizes (``python -m train.export`` wrote them in
its ``config.json``) and ``--config.data.tokenizer_path`` to its tokenizer; a tokenizer
with ``<extra_id_i>`` tokens gives the sentinels, else the last ids of its vocabulary do
(T5's convention; ``sentinels='after_vocab'`` with a model vocabulary wider than the
tokenizer's gives sentinels no text uses).
"""

from configs import tiny_hybrid
from train import config as run_config
from data import config as data_config

LONG = 1024
SHORT = 128   # the checkpoint's trained length: the block


def get_config():
  config = tiny_hybrid.get_config()
  config.init_checkpoint = run_config.find_path("runs/tiny")
  config.model.layer_attention = ("pooled",)
  config.model.local_block = SHORT
  config.model.pool_kernel = 18
  config.model.pool_stride = 12
  config.model.max_seq_len = LONG
  english = data_config.corpus_path("english.txt")
  config.data.sources = {
      "spans": data_config.source_config("text", english, concatenate=12),
      "text": data_config.source_config("text", english, concatenate=12),
  }
  config.data.stages = (data_config.stage_config("adapt", {"spans": 0.5, "text": 0.5}),)
  config.data.span_corruption.update(dict(enabled=True, sources=("spans",)))
  config.train.seq_len = LONG
  config.train.global_batch_size = 8
  config.train.steps = 200
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 20
  config.eval.max_text_rows = 8
  config.eval.max_records = 8
  return config
