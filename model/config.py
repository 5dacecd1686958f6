"""One frozen, hashable configuration for transformer, Mamba-2 and hybrid models.

A model is a stack of residual layers described by a Nemotron-H-style pattern string:

  'M'  Mamba-2 mixer     '*'  attention     '-'  MLP     'L'  a d × d linear map

Every layer is ``x + mixer(rms_norm(x))``. A Llama/Qwen transformer is ``'*-' * n``,
a pure Mamba-2 model is ``'M' * n`` and Nemotron-H interleaves all three.

Layers may differ (heterogeneous blocks, Llama-Nemotron's Puzzle, arXiv 2505.00949):
``layer_kv_heads`` gives each attention layer its own KV-head count and
``layer_mlp_dims`` each MLP layer its own width; 'L' is attention or an MLP replaced by
a linear layer, and a removed sublayer is a layer left out of the pattern.
``layer_attention`` gives each attention layer its own span: full, local blocks, or
local blocks plus pooled summaries of the completed ones (arXiv 2209.10052).
``layer_config(i)`` is layer i's uniform view, which the layer functions read.
The config is passed to jitted functions as one static argument.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

LAYER_KINDS = {"M": "mamba", "*": "attention", "-": "mlp", "L": "linear"}
SSM_IMPLS = ("xla", "pallas", "pallas_interpret")
MLP_ACTIVATIONS = ("swiglu", "relu2")
REMAT_POLICIES = ("none", "full", "dots")
ATTENTION_IMPLS = ("einsum", "chunked", "flash")
# What an attention layer's queries see (model/attention.py): 'full' every earlier key of
# the sequence; 'local' the earlier keys of their own block of ``local_block`` slots;
# 'pooled' that plus, in a second branch whose output is added, the keys and values
# average-pooled over windows of ``pool_kernel`` slots every ``pool_stride`` that lie in
# completed blocks (pooling-augmented blockwise attention, arXiv 2209.10052, causal).
ATTENTION_SPANS = ("full", "local", "pooled")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Sizes and switches of a model. Field names follow the shapes they set."""

  vocab_size: int = 512
  d_model: int = 64
  pattern: str = "M*-M-"
  # Attention.
  n_heads: int = 4
  n_kv_heads: int = 2
  head_dim: int = 16
  qkv_bias: bool = False
  use_rope: bool = True
  rope_theta: float = 10000.0
  # Llama-3 rope scaling: (factor, low_freq_factor, high_freq_factor, original_max_position).
  rope_llama3_scaling: Optional[tuple[float, float, float, int]] = None
  # 'einsum' materialises every (l × s) score matrix; 'chunked' runs an online softmax
  # over key blocks of attention_block (model/attention.py); 'flash' the compile
  # target's fused kernel (TPU splash attention, cuDNN on CUDA, 'chunked' elsewhere).
  # A KV cache uses 'einsum'.
  attention_impl: str = "einsum"
  attention_block: int = 512
  # Long context: every attention layer's span (ATTENTION_SPANS), or one per attention
  # layer in ``layer_attention``; the block and pooling window of 'local' and 'pooled'
  # (the paper: block 1024, kernel 18, stride 12, pooled in the top layers).
  attention: str = "full"
  layer_attention: tuple[str, ...] = ()
  local_block: int = 1024
  pool_kernel: int = 18
  pool_stride: int = 12
  # The longest sequence (tokens of a forward, slots of a cache) the model takes; 0: any.
  max_seq_len: int = 0
  # MLP.
  mlp_dim: int = 128
  mlp_activation: str = "swiglu"
  # Per-layer sizes (empty: every layer takes n_kv_heads / mlp_dim): one entry per
  # attention layer ('*'), one per MLP layer ('-'), in pattern order.
  layer_kv_heads: tuple[int, ...] = ()
  layer_mlp_dims: tuple[int, ...] = ()
  # Mamba-2.
  ssm_heads: int = 4
  ssm_head_dim: int = 16
  ssm_state: int = 16
  ssm_groups: int = 1
  conv_width: int = 4
  chunk_size: int = 16
  dt_min: float = 1e-3
  dt_max: float = 0.1
  dt_limit: tuple[float, float] = (0.0, float("inf"))
  ssm_impl: str = "xla"
  # Shared.
  norm_eps: float = 1e-5
  tie_embeddings: bool = False
  dtype: str = "float32"        # compute dtype: activations and matmuls
  param_dtype: str = "float32"  # storage dtype of the parameters
  remat: str = "none"
  init_std: float = 0.02

  def __post_init__(self):
    def fail(field, value, why):
      raise ValueError(f"ModelConfig.{field}={value!r}: {why}")

    for field in ("vocab_size", "d_model", "n_heads", "n_kv_heads", "head_dim", "mlp_dim",
                  "ssm_heads", "ssm_head_dim", "ssm_state", "ssm_groups", "conv_width",
                  "chunk_size", "attention_block", "local_block", "pool_kernel",
                  "pool_stride"):
      value = getattr(self, field)
      if not isinstance(value, int) or value <= 0:
        fail(field, value, "must be a positive integer")
    if not self.pattern:
      fail("pattern", self.pattern, "must name at least one layer")
    unknown = sorted(set(self.pattern) - set(LAYER_KINDS))
    if unknown:
      fail("pattern", self.pattern, f"unknown layer characters {unknown}; use "
           + ", ".join(f"'{c}' ({k})" for c, k in LAYER_KINDS.items()))
    if self.n_heads % self.n_kv_heads:
      fail("n_kv_heads", self.n_kv_heads,
           f"GQA groups must divide the query heads (n_heads={self.n_heads})")
    for field, char in (("layer_kv_heads", "*"), ("layer_mlp_dims", "-")):
      sizes = getattr(self, field)
      if sizes and len(sizes) != self.pattern.count(char):
        fail(field, sizes, f"needs one entry per '{char}' layer of the pattern "
             f"({self.pattern.count(char)}), or none")
      for i, size in enumerate(sizes):
        if not isinstance(size, int) or size <= 0:
          fail(field, sizes, f"entry {i} must be a positive integer")
    if self.attention not in ATTENTION_SPANS:
      fail("attention", self.attention, f"must be one of {ATTENTION_SPANS}")
    if self.layer_attention and len(self.layer_attention) != self.pattern.count("*"):
      fail("layer_attention", self.layer_attention, "needs one entry per '*' layer of the "
           f"pattern ({self.pattern.count('*')}), or none")
    for i, span in enumerate(self.layer_attention):
      if span not in ATTENTION_SPANS:
        fail("layer_attention", self.layer_attention,
             f"entry {i} ({span!r}) must be one of {ATTENTION_SPANS}")
    if self.pool_kernel > self.local_block:
      fail("pool_kernel", self.pool_kernel,
           f"must fit in a block (local_block={self.local_block})")
    if not isinstance(self.max_seq_len, int) or self.max_seq_len < 0:
      fail("max_seq_len", self.max_seq_len, "must be a non-negative integer (0: any length)")
    for i, kv_heads in enumerate(self.layer_kv_heads):
      if self.n_heads % kv_heads:
        fail("layer_kv_heads", self.layer_kv_heads,
             f"entry {i} ({kv_heads}) must divide the query heads (n_heads={self.n_heads})")
    if self.ssm_heads % self.ssm_groups:
      fail("ssm_groups", self.ssm_groups,
           f"must divide ssm_heads={self.ssm_heads} (each group shares B and C)")
    if self.use_rope and self.head_dim % 2:
      fail("head_dim", self.head_dim, "must be even for rotary embeddings")
    if self.mlp_activation not in MLP_ACTIVATIONS:
      fail("mlp_activation", self.mlp_activation, f"must be one of {MLP_ACTIVATIONS}")
    if self.ssm_impl not in SSM_IMPLS:
      fail("ssm_impl", self.ssm_impl, f"must be one of {SSM_IMPLS}")
    if self.attention_impl not in ATTENTION_IMPLS:
      fail("attention_impl", self.attention_impl, f"must be one of {ATTENTION_IMPLS}")
    if self.attention_impl == "flash" and self.attention_block % 128:
      fail("attention_block", self.attention_block,
           "must be a multiple of 128 with attention_impl='flash' (TPU splash blocks)")
    if self.remat not in REMAT_POLICIES:
      fail("remat", self.remat, f"must be one of {REMAT_POLICIES}")
    for field in ("dtype", "param_dtype"):
      if getattr(self, field) not in ("float32", "bfloat16", "float16", "float64"):
        fail(field, getattr(self, field), "must be a float dtype name such as 'bfloat16'")
    if not 0 < self.dt_min <= self.dt_max:
      fail("dt_min", self.dt_min, f"must satisfy 0 < dt_min <= dt_max={self.dt_max}")
    if self.rope_llama3_scaling is not None and len(self.rope_llama3_scaling) != 4:
      fail("rope_llama3_scaling", self.rope_llama3_scaling,
           "must be (factor, low_freq_factor, high_freq_factor, original_max_position)")

  # Derived sizes.
  @property
  def n_layers(self) -> int:
    return len(self.pattern)

  @property
  def layer_kinds(self) -> tuple[str, ...]:
    return tuple(LAYER_KINDS[c] for c in self.pattern)

  @property
  def ssm_inner(self) -> int:
    return self.ssm_heads * self.ssm_head_dim

  @property
  def is_uniform(self) -> bool:
    """Every attention layer and every MLP layer has the same shape."""
    return not (self.layer_kv_heads or self.layer_mlp_dims or self.layer_attention)

  @functools.lru_cache(maxsize=None)
  def layer_config(self, i: int) -> "ModelConfig":
    """Layer i's sizes as a uniform config (the one the layer functions read)."""
    if self.is_uniform:
      return self
    kind = self.pattern[i]
    nth = self.pattern[:i].count(kind)
    changes = {"layer_kv_heads": (), "layer_mlp_dims": (), "layer_attention": ()}
    if kind == "*" and self.layer_kv_heads:
      changes["n_kv_heads"] = self.layer_kv_heads[nth]
    if kind == "*" and self.layer_attention:
      changes["attention"] = self.layer_attention[nth]
    if kind == "-" and self.layer_mlp_dims:
      changes["mlp_dim"] = self.layer_mlp_dims[nth]
    return self.replace(**changes)

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)


def tiny(**overrides) -> ModelConfig:
  """A tiny hybrid (Mamba-2 + attention + MLP) for CPU tests and the default job."""
  return ModelConfig(**overrides)


def tiny_transformer(**overrides) -> ModelConfig:
  return ModelConfig(**{"pattern": "*-*-", **overrides})


def tiny_mamba(**overrides) -> ModelConfig:
  return ModelConfig(**{"pattern": "MMM", **overrides})


_NEMOTRON_H_8B_PATTERN = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"


def nemotron_h_8b(**overrides) -> ModelConfig:
  """Nemotron-H-8B (arXiv 2504.03624): 52 layers, squared-ReLU MLP, NoPE attention."""
  return ModelConfig(**{
      "vocab_size": 131072, "d_model": 4096, "pattern": _NEMOTRON_H_8B_PATTERN,
      "n_heads": 32, "n_kv_heads": 8, "head_dim": 128, "use_rope": False,
      "mlp_dim": 21504, "mlp_activation": "relu2",
      "ssm_heads": 128, "ssm_head_dim": 64, "ssm_state": 128, "ssm_groups": 8,
      "conv_width": 4, "chunk_size": 128, "tie_embeddings": False, "dtype": "bfloat16",
      **overrides})


def nemotron_h_4b(**overrides) -> ModelConfig:
  """Nemotron-H-4B: the Minitron-SSM width-pruned 8B (d 3072, FFN 12288, 112 Mamba heads)."""
  return nemotron_h_8b(**{"d_model": 3072, "mlp_dim": 12288, "ssm_heads": 112, **overrides})


def llama_1b(**overrides) -> ModelConfig:
  """A Llama-3.2-1B-like transformer: 16 blocks, GQA 32/8, tied embeddings, Llama-3 RoPE."""
  return ModelConfig(**{
      "vocab_size": 128256, "d_model": 2048, "pattern": "*-" * 16,
      "n_heads": 32, "n_kv_heads": 8, "head_dim": 64, "rope_theta": 500000.0,
      "rope_llama3_scaling": (32.0, 1.0, 4.0, 8192), "mlp_dim": 8192,
      "mlp_activation": "swiglu", "tie_embeddings": True, "dtype": "bfloat16",
      **overrides})


def hybrid_125m(**overrides) -> ModelConfig:
  """A ~125M-parameter Nemotron-H-style hybrid for single-GPU experiments."""
  return ModelConfig(**{
      "vocab_size": 32768, "d_model": 768, "pattern": "M-M-M*-M-M-M*-M-M-",
      "n_heads": 12, "n_kv_heads": 4, "head_dim": 64, "use_rope": False,
      "mlp_dim": 3072, "mlp_activation": "relu2",
      "ssm_heads": 24, "ssm_head_dim": 64, "ssm_state": 128, "ssm_groups": 1,
      "chunk_size": 128, "dtype": "bfloat16", **overrides})


NAMED = {
    "tiny": tiny, "tiny_transformer": tiny_transformer, "tiny_mamba": tiny_mamba,
    "nemotron_h_8b": nemotron_h_8b, "nemotron_h_4b": nemotron_h_4b,
    "llama_1b": llama_1b, "hybrid_125m": hybrid_125m,
}


def named(name: str, **overrides) -> ModelConfig:
  if name not in NAMED:
    raise ValueError(f"unknown model config name {name!r}; known: {sorted(NAMED)}")
  return NAMED[name](**overrides)
