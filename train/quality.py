r"""A page-quality classifier for the curation pipelines' quality stage: Nemotron-CC-Math
(arXiv 2508.15096) rates pages 0-5 for mathematical quality and keeps those rated 3 or
more. Trained with this codebase on labelled examples.

  python -m train.quality --records=labelled.jsonl --out=quality.npz [--steps=400]
  python -m data.curate --pipeline=cc_math --input=... --output=... \
      --config.quality.scorer=train.quality:load_scorer \
      --config.quality.args.path=quality.npz --config.quality.threshold=3

Records: JSONL {"text", "score"} with integer scores 0-5. The model: softmax regression
over the six scores on hashed word 1-2-gram counts (``train.climb.hashed_ngram_embedding``,
L2-normalised), trained by Adam on the cross-entropy with a jitted ``step(state, batch)
-> (state, metrics)`` over shuffled minibatches. A page's score is the expected label
under the model (0-5, continuous), so a threshold of 3 keeps pages the classifier puts
at 3 or above on average. The file (``.npz``) holds the weights and the features'
settings.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags

from data import sources
from train import climb

SCORES = 6          # labels 0..5


@dataclasses.dataclass(frozen=True)
class QualityClassifier:
  """Weights (dim, 6) and bias (6,) over ``hashed_ngram_embedding(texts, dim, ngrams)``."""

  weights: np.ndarray
  bias: np.ndarray
  ngrams: tuple[int, int] = (1, 2)

  def features(self, texts: Sequence[str]) -> np.ndarray:
    return climb.hashed_ngram_embedding(texts, self.weights.shape[0], self.ngrams)

  def probabilities(self, texts: Sequence[str]) -> np.ndarray:
    """(N, 6) probabilities of each score."""
    logits = self.features(texts) @ self.weights + self.bias[None, :]
    return np.asarray(jax.nn.softmax(logits, axis=-1))

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    """(N,) expected scores in [0, 5]."""
    return self.probabilities(texts) @ np.arange(SCORES, dtype=np.float32)

  def save(self, path: str) -> None:
    with open(path, "wb") as f:     # np.savez adds '.npz' to a name without it
      np.savez(f, weights=self.weights, bias=self.bias, ngrams=np.asarray(self.ngrams))


def load_scorer(path: str) -> QualityClassifier:
  """The quality stage's plug-in: the classifier saved at ``path``."""
  if not path:
    raise ValueError("quality.args.path: the classifier file (python -m train.quality) is "
                     "not set")
  with np.load(path) as saved:
    return QualityClassifier(saved["weights"], saved["bias"], tuple(saved["ngrams"].tolist()))


def read_labelled(path: str) -> tuple[list[str], np.ndarray]:
  """(texts, scores) of a labelled JSONL file; a ValueError names a bad record."""
  texts, scores = [], []
  for where, record in sources.read_located_records(path):
    score = record.get("score")
    if not isinstance(record.get("text"), str) or not isinstance(score, int) or not (
        0 <= score < SCORES):
      raise ValueError(f"{where}: a labelled record needs 'text' and an integer 'score' "
                       f"in 0..{SCORES - 1} (it has {sorted(record)})")
    texts.append(record["text"])
    scores.append(score)
  if not texts:
    raise ValueError(f"{path}: no labelled records")
  return texts, np.asarray(scores, np.int32)


@functools.partial(jax.jit, static_argnums=0)
def _step(optimizer: optax.GradientTransformation, state, batch):
  def loss_fn(params):
    logits = batch["features"] @ params["weights"] + params["bias"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["scores"]).mean()
  params, opt_state = state
  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return (optax.apply_updates(params, updates), opt_state), {"loss": loss}


def train_classifier(texts: Sequence[str], scores: np.ndarray, *, dim: int = 4096,
                     ngrams: tuple[int, int] = (1, 2), steps: int = 400,
                     batch_size: int = 64, learning_rate: float = 0.05,
                     weight_decay: float = 1e-4, seed: int = 0,
                     log: Callable[[int, float], None] | None = None) -> QualityClassifier:
  """Fits the classifier to ``(texts, scores)`` (see the module docstring)."""
  features = climb.hashed_ngram_embedding(texts, dim, ngrams)
  optimizer = optax.adamw(learning_rate, weight_decay=weight_decay)
  params = {"weights": jnp.zeros((dim, SCORES)), "bias": jnp.zeros((SCORES,))}
  state = (params, optimizer.init(params))
  rng = np.random.default_rng(seed)
  size = min(batch_size, len(texts))
  for step in range(steps):
    rows = rng.choice(len(texts), size=size, replace=False)
    state, metrics = _step(optimizer, state, {"features": features[rows],
                                              "scores": scores[rows]})
    if log is not None and (step + 1) % 100 == 0:
      log(step + 1, float(metrics["loss"]))
  params = jax.device_get(state[0])
  return QualityClassifier(np.asarray(params["weights"]), np.asarray(params["bias"]),
                           tuple(ngrams))


def main(argv):
  del argv
  texts, scores = read_labelled(_RECORDS.value)
  classifier = train_classifier(texts, scores, dim=_DIM.value, steps=_STEPS.value,
                                log=lambda step, loss: print(f"step {step} | loss {loss:.4f}"))
  classifier.save(_OUT.value)
  exact = float(np.mean(np.rint(classifier(texts)) == scores))
  print(f"wrote {_OUT.value}: {len(texts)} records, training accuracy (rounded) {exact:.3f}")


if __name__ == "__main__":
  _RECORDS = flags.DEFINE_string("records", None, "Labelled JSONL {text, score 0-5}.")
  _OUT = flags.DEFINE_string("out", None, "Where the classifier is written (.npz).")
  _STEPS = flags.DEFINE_integer("steps", 400, "Adam steps.")
  _DIM = flags.DEFINE_integer("dim", 4096, "Hashed feature buckets.")
  flags.mark_flags_as_required(["records", "out"])
  app.run(main)
