"""Hugging Face interop: configs and safetensors checkpoints.

    cfg = config_from_hf(json.load(open(path + '/config.json')))   # or a transformers config
    params, cfg = load_hf_checkpoint(path, dtype='bfloat16')
    save_hf_checkpoint(params, cfg, out_dir, architecture='NemotronHForCausalLM')

Supported families (``architectures[0]``, else ``model_type``):

  LlamaForCausalLM      decoder block i → pattern layers '*' (input_layernorm + self_attn)
  Qwen2ForCausalLM        and '-' (post_attention_layernorm + SwiGLU mlp); Qwen2 adds q/k/v bias
  DeciLMForCausalLM     Llama-Nemotron (arXiv 2505.00949): decoder block i → '*', 'L' or
                          nothing, then '-', 'L' or nothing, each block its own sizes
  Mamba2ForCausalLM     layer i → 'M'
  NemotronHForCausalLM  layer i → 'M', '*' (no RoPE) or '-' (squared-ReLU MLP), 1:1

Each family has ONE mapping table (``_mapping``): entries ``(HF key, our key paths,
layout)``. The layout says how our arrays sit inside the HF tensor (transposed linear,
depthwise conv, flat vector, identical); several of our arrays concatenated along the
HF tensor's first axis form one fused HF tensor (Mamba's in_proj = [z, x, B, C, dt],
conv1d = [x, B, C]). Loading and saving both walk that one table.

Semantics (transformers 5.23-5.25 modeling files, NVIDIA's NemotronH modeling code):
  * dt clamp of NemotronH's Mamba mixer. NVIDIA's published modeling code clamps
    softplus(dt + dt_bias) to ``config.time_step_limit`` (default (0, inf), i.e. no
    clamp) on its mamba_ssm kernel path, the one the released checkpoints run on, and so
    does transformers >= 5.25; NVIDIA's pure-torch fallback and transformers 5.23-5.24
    floor dt at time_step_min and ignore ``time_step_limit``. No version's one-token
    decode step clamps at all. Where dt_bias puts dt below time_step_min (0.001) the
    logits differ by several percent. We follow the reference by default
    (``dt_floor="time_step_limit"``); ``dt_floor="time_step_min"`` reproduces the forward
    of transformers 5.23-5.24. Mamba2 clamps to ``time_step_limit`` in both libraries.
  * Keys missing from a config.json take the defaults of transformers' config class
    for the family (``_HF_DEFAULTS``), as ``from_pretrained`` would; e.g. NemotronH's
    ``head_dim`` is 128 (NVIDIA's own config calls it ``attention_head_dim``), not
    hidden_size // num_attention_heads. Except the keys that size the model
    (``_SIZING_KEYS``: vocabulary, width, depth, MLP width), which every real
    config.json has: ``load_hf_checkpoint`` names the one missing.
  * The gated RMSNorm of both Mamba families takes the RMS per group of
    d_inner / n_groups channels with eps = layer_norm_epsilon (our ``gated_rms_norm``
    with cfg.norm_eps).
  * NemotronH attention applies no rotary embedding and has no biases; its
    ``_tied_weights_keys`` is empty, so a tied model is saved with an explicit lm_head.
    Saving writes ``time_step_limit`` = cfg.dt_limit and ``time_step_min`` = its lower
    end, so that the reference model and every transformers version compute our
    function (their unclamped decode step too when that lower end is 0, the default).
  * Token ids: ``save_hf_checkpoint(..., token_ids=)`` writes bos/eos/pad ids into
    config.json and ``generation_config.json`` (``GenerationConfig``: eos_token_id is an
    int or a list), which ``generate`` reads; without them NemotronH's config defaults
    (bos 1, eos 2, pad 0) would apply.
  * Mamba2's ``residual_in_fp32`` only changes the residual dtype; our residual stream is
    in cfg.dtype (identical in float32).
  * DeciLM (model_type 'nemotron-nas', NVIDIA's modeling_decilm.py and block_config.py):
    a Llama config whose ``num_key_value_heads`` and ``intermediate_size`` are null and
    whose ``block_configs`` give each decoder layer an ``attention`` and an ``ffn``
    sub-block. ``no_op`` removes the sub-block and its norm; ``replace_with_linear``
    makes it ``x + W·rms_norm(x)`` with a bias-free hidden × hidden ``linear_attn`` /
    ``linear_mlp`` (our 'L'); otherwise attention has num_attention_heads //
    n_heads_in_group KV heads and the SwiGLU MLP is ``_ffn_width(ffn_mult, hidden_size)``
    wide. Head width is hidden_size // num_attention_heads. Unknown sub-block fields are
    refused (NVIDIA's code drops them with a warning) and sliding-window / sink
    attention is not implemented; ``sparsify`` only adds a backward hook there.
    A pattern is saved in canonical blocks (``_blocks_of``): an attention or 'L' layer
    takes the '-' or 'L' layer after it as its ffn, a '-' alone gets a no-op attention.
    Reloaded, the pattern and every array come back unchanged; a DeciLM file whose
    blocks group its sub-blocks otherwise (an 'L' then an 'L' in two blocks, say) saves
    back in fewer blocks, the same function.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from collections.abc import Mapping
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
import safetensors.numpy

from model import lm
from model import params as P
from model.config import ModelConfig

ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "DeciLMForCausalLM": "nemotron-nas",
    "Mamba2ForCausalLM": "mamba2",
    "NemotronHForCausalLM": "nemotron_h",
}
_FAMILY_ARCHITECTURE = {family: arch for arch, family in ARCHITECTURES.items()}
_NEMOTRON_BLOCKS = {"linear_attention": "M", "full_attention": "*", "mlp": "-", "moe": "E"}
# The fields of NVIDIA's AttentionConfig and FFNConfig (block_config.py), the keys of a
# block_configs entry. window_length and num_sink_tokens must be null (no sliding-window or
# sink attention); the two sink switches act only with them.
_DECILM_FIELDS = {
    "attention": ("no_op", "replace_with_linear", "n_heads_in_group", "window_length",
                  "num_sink_tokens", "use_prefill_window_in_sink_attention",
                  "unshifted_sink", "sparsify"),
    "ffn": ("no_op", "replace_with_linear", "ffn_mult", "sparsify"),
}
_NEMOTRON_LEGACY = {  # old NemotronH config names → current ones (configuration_nemotron_h.py)
    "mamba_n_groups": "n_groups", "mamba_d_conv": "conv_kernel", "mamba_expand": "expand",
    "mamba_dt_min": "time_step_min", "mamba_dt_max": "time_step_max",
    "mamba_dt_limit": "time_step_limit", "mamba_conv_bias": "use_conv_bias",
    "mamba_chunk_size": "chunk_size", "attention_head_dim": "head_dim",
}
_INF = float("inf")
# The defaults of transformers 5.24's LlamaConfig, Qwen2Config, Mamba2Config and
# NemotronHConfig (class fields and __post_init__) for every key read here: a key missing
# from config.json means this value, as in ``from_pretrained``. None: derived,
# head_dim = hidden_size // num_attention_heads (Qwen2Attention reads an optional
# head_dim the same way), num_key_value_heads = num_attention_heads.
_TRANSFORMER_DEFAULTS = {
    "hidden_act": "silu", "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
    "initializer_range": 0.02, "head_dim": None, "rope_theta": 10000.0,
}
_HF_DEFAULTS = {
    "llama": {**_TRANSFORMER_DEFAULTS, "vocab_size": 32000, "hidden_size": 4096,
              "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": None,
              "max_position_embeddings": 2048, "attention_bias": False, "mlp_bias": False},
    # NVIDIA's DeciLMConfig: transformers 4.44's LlamaConfig plus block_configs; its newer
    # versions add position_embedding_type and o_proj_bias.
    "nemotron-nas": {**_TRANSFORMER_DEFAULTS, "vocab_size": 32000, "hidden_size": 4096,
                     "num_hidden_layers": 32, "num_attention_heads": 32,
                     "max_position_embeddings": 2048, "attention_bias": False,
                     "mlp_bias": False, "block_configs": None,
                     "position_embedding_type": "rope", "o_proj_bias": False},
    "qwen2": {**_TRANSFORMER_DEFAULTS, "vocab_size": 151936, "hidden_size": 4096,
              "intermediate_size": 22016, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 32,
              "max_position_embeddings": 32768, "use_sliding_window": False,
              "layer_types": None},
    "mamba2": {"vocab_size": 32768, "hidden_size": 4096, "num_hidden_layers": 64,
               "num_heads": 128, "head_dim": 64, "expand": 2, "state_size": 128,
               "n_groups": 8, "conv_kernel": 4, "chunk_size": 256, "hidden_act": "silu",
               "use_bias": False, "use_conv_bias": True, "layer_norm_epsilon": 1e-5,
               "time_step_min": 0.001, "time_step_max": 0.1, "time_step_limit": (0.0, _INF),
               "tie_word_embeddings": False, "initializer_range": 0.1},
    "nemotron_h": {"vocab_size": 131072, "hidden_size": 4096,
                   "layers_block_type": ["linear_attention", "moe", "full_attention", "mlp"],
                   "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                   "sliding_window": None, "intermediate_size": 21504,
                   "mlp_hidden_act": "relu2", "mlp_bias": False, "ssm_state_size": 128,
                   "mamba_num_heads": 128, "mamba_head_dim": 64, "mamba_hidden_act": "silu",
                   "n_groups": 8, "conv_kernel": 4, "chunk_size": 128, "use_bias": False,
                   "use_conv_bias": True, "time_step_min": 0.001, "time_step_max": 0.1,
                   "time_step_limit": (0.0, _INF), "tie_word_embeddings": False,
                   "initializer_range": 0.02, "layer_norm_epsilon": 1e-5},
}
# The keys that size the model, which transformers writes into every config.json (also
# at their default values) and NVIDIA's NemotronH configs have: missing, a default would
# make a model of another size, which shows only as a wrong shape of the first tensor.
# A tuple holds alternative names. Head counts and widths, state sizes and the rest keep
# transformers' defaults.
_SIZING_KEYS = {
    "llama": ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"),
    "qwen2": ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"),
    "nemotron-nas": ("vocab_size", "hidden_size", "num_hidden_layers", "block_configs"),
    "mamba2": ("vocab_size", "hidden_size", "num_hidden_layers"),
    "nemotron_h": ("vocab_size", "hidden_size", "intermediate_size",
                   ("layers_block_type", "hybrid_override_pattern")),
}
DT_FLOORS = ("time_step_limit", "time_step_min")

Path = tuple  # a key path into our param tree, e.g. ("layers", 3, "in_x")
# A Llama-style decoder block: its attention sub-block ('*', 'L' or '' for none) and its
# MLP sub-block ('-', 'L' or ''), as pattern characters.
Block = tuple[str, str]


# ------------------------------------------------------------------------------ config


def _unsupported(family: str, field: str, value, why: str):
  raise ValueError(f"{_FAMILY_ARCHITECTURE.get(family, family)} config field "
                   f"{field}={value!r} is not supported: {why}")


def _decode_floats(value):
  """transformers 5 writes non-finite floats as {"__float__": "Infinity"}."""
  if isinstance(value, Mapping):
    if set(value) == {"__float__"}:
      return float(value["__float__"])
    return {k: _decode_floats(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_decode_floats(v) for v in value]
  return value


def _encode_floats(value):
  if isinstance(value, float) and not math.isfinite(value):
    return {"__float__": "NaN" if math.isnan(value) else
            ("Infinity" if value > 0 else "-Infinity")}
  if isinstance(value, Mapping):
    return {k: _encode_floats(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_encode_floats(v) for v in value]
  return value


def _as_dict(hf_config) -> dict:
  if isinstance(hf_config, Mapping):
    d = dict(hf_config)
  elif hasattr(hf_config, "to_dict"):
    d = hf_config.to_dict()
  else:
    raise TypeError(f"expected a config dict or a transformers config, got {type(hf_config)}")
  return _decode_floats(d)


def hf_family(hf_config) -> str:
  """'llama' | 'qwen2' | 'nemotron-nas' | 'mamba2' | 'nemotron_h' from ``architectures`` or
  ``model_type``."""
  d = _as_dict(hf_config)
  for arch in d.get("architectures") or ():
    if arch in ARCHITECTURES:
      return ARCHITECTURES[arch]
  if d.get("model_type") in _FAMILY_ARCHITECTURE:
    return d["model_type"]
  raise ValueError(
      f"HF config architectures={d.get('architectures')!r} / model_type="
      f"{d.get('model_type')!r} is not supported; supported: {sorted(ARCHITECTURES)}")


def _check_sizing_keys(d: dict, family: str) -> None:
  """ValueError naming the first of ``_SIZING_KEYS[family]`` that ``d`` lacks."""
  for key in _SIZING_KEYS[family]:
    names = key if isinstance(key, tuple) else (key,)
    if all(d.get(name) is None for name in names):
      raise ValueError(f"no {' or '.join(map(repr, names))}: a "
                       f"{_FAMILY_ARCHITECTURE[family]} config must set it (it sizes the "
                       "model; transformers' default is a model of another size)")


def _rope(d: dict, family: str) -> tuple[float, Optional[tuple]]:
  """(rope_theta, llama3 scaling tuple or None) from rope_parameters or legacy rope_scaling."""
  params = d.get("rope_parameters")
  if params is None:  # transformers 4 layout: rope_theta + rope_scaling.
    params = dict(d.get("rope_scaling") or {})
  params = dict(params)
  if params and all(isinstance(v, Mapping) for v in params.values()):  # per layer type
    distinct = {json.dumps(v, sort_keys=True) for v in params.values()}
    if len(distinct) != 1:
      _unsupported(family, "rope_parameters", params, "per-layer-type RoPE settings differ")
    params = dict(next(iter(params.values())))
  rope_type = params.get("rope_type", params.get("type", "default"))
  partial = params.get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0))
  if partial != 1.0:
    _unsupported(family, "partial_rotary_factor", partial, "only full-width RoPE")
  theta = float(params.get("rope_theta", d["rope_theta"]))
  if rope_type == "default":
    return theta, None
  if rope_type == "llama3":
    original = params.get("original_max_position_embeddings", d["max_position_embeddings"])
    return theta, (float(params["factor"]), float(params["low_freq_factor"]),
                   float(params["high_freq_factor"]), int(original))
  _unsupported(family, "rope_parameters.rope_type", rope_type,
               "only 'default' and 'llama3' RoPE are implemented")


def _attention_widths(d: dict) -> dict:
  """n_heads, n_kv_heads and head_dim; None means derived as in transformers."""
  heads = d["num_attention_heads"]
  kv_heads = d["num_key_value_heads"]
  return {"n_heads": heads, "n_kv_heads": heads if kv_heads is None else kv_heads,
          "head_dim": d["head_dim"] or d["hidden_size"] // heads}


def _ffn_width(ffn_mult: float, hidden: int) -> int:
  """DeciLM's MLP width: int(2/3 · ffn_mult · hidden) rounded up to a multiple of 256
  (NVIDIA's _ffn_mult_to_intermediate_size of ffn_mult rounded to 6 decimals, as their
  FFNConfig stores it)."""
  width = int(2 * round(ffn_mult, 6) * hidden / 3)
  return -(-width // 256) * 256


def _decilm_blocks(d: dict) -> tuple[list[Block], list[int], list[int]]:
  """From a DeciLM config's ``block_configs``: each decoder layer's Block, the KV heads
  of its attention ('*') layers and the widths of its MLP ('-') layers, in order.
  ValueError naming the layer and the field of the first malformed or unsupported entry."""
  configs, n_layers = d["block_configs"], d["num_hidden_layers"]
  if not isinstance(configs, list) or len(configs) != n_layers:
    got = (f"{len(configs)} entries" if isinstance(configs, list)
           else f"a {type(configs).__name__}")
    raise ValueError(f"DeciLMForCausalLM config field block_configs has {got}: want one "
                     f"object per decoder layer (num_hidden_layers={n_layers})")
  heads, hidden = d["num_attention_heads"], d["hidden_size"]
  blocks, kv_heads, widths = [], [], []
  for i, entry in enumerate(configs):
    def fail(field, value, why, i=i):
      raise ValueError(f"DeciLMForCausalLM config field block_configs[{i}]{field}="
                       f"{value!r}: {why}")

    if not isinstance(entry, Mapping):
      fail("", entry, "want an object with 'attention' and 'ffn'")
    for kind in entry:
      if kind not in _DECILM_FIELDS:
        fail(f".{kind}", entry[kind], "unknown sub-block; a block has 'attention' and 'ffn'")
    block = []
    for kind, fields in _DECILM_FIELDS.items():
      sub = entry.get(kind)
      if not isinstance(sub, Mapping):
        fail(f".{kind}", sub, "want an object")
      for key, value in sub.items():
        if key not in fields:
          fail(f".{kind}.{key}", value, f"unknown field; known: {list(fields)}")
      for key in ("no_op", "replace_with_linear"):
        if not isinstance(sub.get(key, False), bool):
          fail(f".{kind}.{key}", sub[key], "want true or false")
      if sub.get("no_op") and sub.get("replace_with_linear"):
        fail(f".{kind}", dict(sub), "no_op and replace_with_linear are both true: a "
             "sub-block is removed or linear, not both")
      if sub.get("no_op") or sub.get("replace_with_linear"):
        block.append("" if sub.get("no_op") else "L")
      elif kind == "attention":
        for key in ("window_length", "num_sink_tokens"):
          if sub.get(key) is not None:
            fail(f".attention.{key}", sub[key], "sliding-window and sink attention are "
                 "not implemented")
        group = sub.get("n_heads_in_group")
        if isinstance(group, bool) or not isinstance(group, int) or group <= 0 or heads % group:
          fail(".attention.n_heads_in_group", group, "want a positive integer that "
               f"divides num_attention_heads={heads}")
        block.append("*")
        kv_heads.append(heads // group)
      else:
        mult = sub.get("ffn_mult")
        if (isinstance(mult, bool) or not isinstance(mult, (int, float))
            or not 0 < mult < _INF or _ffn_width(mult, hidden) == 0):
          fail(".ffn.ffn_mult", mult, "want a number that gives a positive width "
               f"(int(2/3 · ffn_mult · hidden_size={hidden}) rounded up to a multiple of 256)")
        block.append("-")
        widths.append(_ffn_width(mult, hidden))
    blocks.append(tuple(block))
  return blocks, kv_heads, widths


def _layer_sizes(uniform: str, per_layer: str, sizes: list[int], default: int) -> dict:
  """One ModelConfig size for every layer when they agree (``default`` if there is no
  such layer), else one per layer (the uniform field, then unused, the largest)."""
  if len(set(sizes)) > 1:
    return {uniform: max(sizes), per_layer: tuple(sizes)}
  return {uniform: sizes[0] if sizes else default}


def _decilm_sizes(d: dict, family: str) -> dict:
  """The pattern and sizes of a DeciLM config's layers, ModelConfig fields."""
  if d["position_embedding_type"] != "rope":
    _unsupported(family, "position_embedding_type", d["position_embedding_type"],
                 "only 'rope' (rotate-half RoPE)")
  if d["o_proj_bias"]:
    _unsupported(family, "o_proj_bias", True, "the attention output has no bias")
  heads, hidden = d["num_attention_heads"], d["hidden_size"]
  if hidden % heads:
    _unsupported(family, "num_attention_heads", heads,
                 f"DeciLM heads are hidden_size // num_attention_heads wide; {hidden} is "
                 "no multiple of it")
  if d["head_dim"] not in (None, hidden // heads):
    _unsupported(family, "head_dim", d["head_dim"], "DeciLM heads are hidden_size // "
                 f"num_attention_heads = {hidden // heads} wide")
  blocks, kv_heads, widths = _decilm_blocks(d)
  return {"pattern": "".join(a + f for a, f in blocks), "n_heads": heads,
          "head_dim": hidden // heads,
          **_layer_sizes("n_kv_heads", "layer_kv_heads", kv_heads, heads),
          **_layer_sizes("mlp_dim", "layer_mlp_dims", widths, hidden)}


def _transformer_config(d: dict, family: str) -> ModelConfig:
  if d["hidden_act"] != "silu":
    _unsupported(family, "hidden_act", d["hidden_act"], "the MLP is SwiGLU (silu gate)")
  if family in ("llama", "nemotron-nas"):
    if d["mlp_bias"]:
      _unsupported(family, "mlp_bias", True, "MLP projections have no bias")
    if d["attention_bias"]:
      _unsupported(family, "attention_bias", True,
                   "Llama's attention_bias also adds an o_proj bias, which we do not have")
  if family == "qwen2":
    if d["use_sliding_window"]:
      _unsupported(family, "use_sliding_window", True, "sliding-window attention")
    layer_types = d["layer_types"] or []
    if any(t != "full_attention" for t in layer_types):
      _unsupported(family, "layer_types", layer_types, "only full_attention layers")
  theta, llama3 = _rope(d, family)
  if family == "nemotron-nas":
    sizes = _decilm_sizes(d, family)
  else:
    sizes = {"pattern": "*-" * d["num_hidden_layers"], **_attention_widths(d),
             "mlp_dim": d["intermediate_size"]}
  return ModelConfig(
      vocab_size=d["vocab_size"], d_model=d["hidden_size"], **sizes,
      qkv_bias=family == "qwen2", use_rope=True, rope_theta=theta,
      rope_llama3_scaling=llama3, mlp_activation="swiglu",
      norm_eps=float(d["rms_norm_eps"]), tie_embeddings=bool(d["tie_word_embeddings"]),
      init_std=float(d["initializer_range"]))


def _check_mamba_fields(d: dict, family: str, act_key: str):
  if d[act_key] != "silu":
    _unsupported(family, act_key, d[act_key], "the Mamba-2 mixer uses SiLU")
  if d["use_bias"]:
    _unsupported(family, "use_bias", True, "Mamba in_proj/out_proj have no bias")


def _dt_range(d: dict) -> dict:
  """Init range of dt; ModelConfig needs 0 < dt_min <= dt_max."""
  dt_min, dt_max = float(d["time_step_min"]), float(d["time_step_max"])
  dt_min = dt_min if dt_min > 0 else min(1e-3, dt_max)
  return {"dt_min": dt_min, "dt_max": max(dt_min, dt_max)}


def _mamba2_config(d: dict, family: str, dt_floor: str) -> ModelConfig:
  del dt_floor  # Mamba2 clamps to time_step_limit in transformers too.
  _check_mamba_fields(d, family, "hidden_act")
  hidden, heads, head_dim = d["hidden_size"], d["num_heads"], d["head_dim"]
  if heads * head_dim != int(d["expand"] * hidden):
    _unsupported(family, "num_heads", heads,
                 f"num_heads*head_dim={heads * head_dim} != expand*hidden_size="
                 f"{d['expand'] * hidden}")
  return ModelConfig(
      vocab_size=d["vocab_size"], d_model=hidden, pattern="M" * d["num_hidden_layers"],
      ssm_heads=heads, ssm_head_dim=head_dim, ssm_state=d["state_size"],
      ssm_groups=d["n_groups"], conv_width=d["conv_kernel"], chunk_size=d["chunk_size"],
      dt_limit=tuple(float(x) for x in d["time_step_limit"]), **_dt_range(d),
      norm_eps=float(d["layer_norm_epsilon"]),
      tie_embeddings=bool(d["tie_word_embeddings"]), init_std=float(d["initializer_range"]))


def _nemotron_h_renamed(d: dict) -> dict:
  """Old and NVIDIA config names → transformers' current ones; a hybrid_override_pattern
  ('M*-') → layers_block_type."""
  d = dict(d)
  for old, new in _NEMOTRON_LEGACY.items():
    if old in d:
      value = d.pop(old)
      if new in d and d[new] != value:
        raise ValueError(f"NemotronHForCausalLM config has {old}={value!r} and "
                         f"{new}={d[new]!r}; they name the same setting")
      d[new] = value
  pattern = d.pop("hybrid_override_pattern", None)
  if d.get("layers_block_type") is None:
    d.pop("layers_block_type", None)   # transformers' default list
  if "layers_block_type" not in d and pattern is not None:
    reverse = {c: block for block, c in _NEMOTRON_BLOCKS.items()}
    unknown = sorted(set(pattern) - set(reverse))
    if unknown:
      _unsupported("nemotron_h", "hybrid_override_pattern", pattern,
                   f"unknown layer symbols {unknown}")
    d["layers_block_type"] = [reverse[c] for c in pattern]
  return d


def _dt_limit(d: dict, dt_floor: str) -> tuple[float, float]:
  if dt_floor == "time_step_limit":   # NVIDIA's NemotronHMamba2Mixer
    return tuple(float(x) for x in d["time_step_limit"])
  return (float(d["time_step_min"]), float("inf"))   # transformers' NemotronHMamba2Mixer


def _nemotron_h_config(d: dict, family: str, dt_floor: str) -> ModelConfig:
  blocks = d["layers_block_type"]
  unknown = [b for b in blocks if b not in _NEMOTRON_BLOCKS]
  if unknown:
    _unsupported(family, "layers_block_type", blocks, f"unknown block types {unknown}")
  pattern = "".join(_NEMOTRON_BLOCKS[b] for b in blocks)
  if "E" in pattern:
    _unsupported(family, "layers_block_type", pattern, "MoE ('moe' / 'E') layers")
  _check_mamba_fields(d, family, "mamba_hidden_act")
  if d["mlp_bias"]:
    _unsupported(family, "mlp_bias", True, "MLP projections have no bias")
  if d["mlp_hidden_act"] != "relu2":
    _unsupported(family, "mlp_hidden_act", d["mlp_hidden_act"],
                 "the non-gated MLP is implemented for relu2 only")
  if d["sliding_window"] is not None:
    _unsupported(family, "sliding_window", d["sliding_window"], "sliding-window attention")
  return ModelConfig(
      vocab_size=d["vocab_size"], d_model=d["hidden_size"], pattern=pattern,
      **_attention_widths(d), qkv_bias=False, use_rope=False,
      mlp_dim=d["intermediate_size"], mlp_activation="relu2",
      ssm_heads=d["mamba_num_heads"], ssm_head_dim=d["mamba_head_dim"],
      ssm_state=d["ssm_state_size"], ssm_groups=d["n_groups"], conv_width=d["conv_kernel"],
      chunk_size=d["chunk_size"], dt_limit=_dt_limit(d, dt_floor), **_dt_range(d),
      norm_eps=float(d["layer_norm_epsilon"]),
      tie_embeddings=bool(d["tie_word_embeddings"]), init_std=float(d["initializer_range"]))


_CONFIG_READERS = {
    "llama": lambda d, family, dt_floor: _transformer_config(d, family),
    "qwen2": lambda d, family, dt_floor: _transformer_config(d, family),
    "nemotron-nas": lambda d, family, dt_floor: _transformer_config(d, family),
    "mamba2": _mamba2_config, "nemotron_h": _nemotron_h_config}


def config_from_hf(hf_config, *, dt_floor: str = "time_step_limit") -> ModelConfig:
  """A ModelConfig from a HF config (a ``config.json`` dict or a transformers config).

  Missing keys take transformers' defaults (``_HF_DEFAULTS``). ``dt_floor`` picks how a
  NemotronH Mamba mixer clamps dt: 'time_step_limit' (NVIDIA's reference model) or
  'time_step_min' (transformers); see the module docstring. Raises ValueError naming
  the field for features we do not implement (MoE layers, RoPE types other than
  default/llama3, sliding windows, biases we lack, ...).
  """
  if dt_floor not in DT_FLOORS:
    raise ValueError(f"dt_floor={dt_floor!r}: want one of {DT_FLOORS}")
  d = _as_dict(hf_config)
  family = hf_family(d)
  if family == "nemotron_h":
    d = _nemotron_h_renamed(d)
  d = {**_HF_DEFAULTS[family], **d}
  return _CONFIG_READERS[family](d, family, dt_floor)


# NVIDIA's DeciLM config.json names its code (trust_remote_code), which transformers lacks.
_DECILM_AUTO_MAP = {"AutoConfig": "configuration_decilm.DeciLMConfig",
                    "AutoModelForCausalLM": "modeling_decilm.DeciLMForCausalLM"}


def _blocks_of(pattern: str) -> list[Block]:
  """A pattern of '*', '-' and 'L' layers in Llama-style decoder blocks: an attention or
  'L' layer takes the '-' or 'L' layer after it as its MLP; a '-' alone has none before."""
  blocks, i = [], 0
  while i < len(pattern):
    attention = pattern[i] if pattern[i] in "*L" else ""
    i += len(attention)
    mlp = pattern[i] if i < len(pattern) and pattern[i] in "-L" else ""
    i += len(mlp)
    if not attention + mlp:
      raise AssertionError(f"layer {i} of {pattern!r} is in no Llama-style block")
    blocks.append((attention, mlp))
  return blocks


def _decilm_block_configs(cfg: ModelConfig, fail) -> list[dict]:
  """``block_configs`` of cfg's pattern in canonical blocks (``_blocks_of``), with every
  field of NVIDIA's AttentionConfig and FFNConfig; ``fail(field, why)`` for an MLP width
  that no ffn_mult gives."""
  out, layer = [], 0
  for attention, mlp in _blocks_of(cfg.pattern):
    block = {
        "attention": {"no_op": not attention, "replace_with_linear": attention == "L",
                      "n_heads_in_group": None, "window_length": None,
                      "num_sink_tokens": None, "use_prefill_window_in_sink_attention": False,
                      "unshifted_sink": False, "sparsify": None},
        "ffn": {"no_op": not mlp, "replace_with_linear": mlp == "L", "ffn_mult": None,
                "sparsify": None}}
    if attention == "*":
      block["attention"]["n_heads_in_group"] = (
          cfg.n_heads // cfg.layer_config(layer).n_kv_heads)
    layer += len(attention)
    if mlp == "-":
      width = cfg.layer_config(layer).mlp_dim
      ffn_mult = round(1.5 * width / cfg.d_model, 6)
      if _ffn_width(ffn_mult, cfg.d_model) != width:
        fail("layer_mlp_dims" if cfg.layer_mlp_dims else "mlp_dim",
             f"layer {layer}'s width {width} is not a DeciLM width (a multiple of 256: "
             "int(2/3 · ffn_mult · d_model) rounded up)")
      block["ffn"]["ffn_mult"] = ffn_mult
    layer += len(mlp)
    out.append(block)
  return out


def _hf_config(cfg: ModelConfig, family: str, dtype_name: str) -> dict:
  """The config.json for ``cfg`` saved as ``family``; ValueError if not representable."""
  def fail(field, why):
    raise ValueError(f"cannot save as {_FAMILY_ARCHITECTURE[family]}: ModelConfig."
                     f"{field}={getattr(cfg, field)!r}: {why}")

  common = {"architectures": [_FAMILY_ARCHITECTURE[family]], "model_type": family,
            "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model, "dtype": dtype_name,
            "tie_word_embeddings": cfg.tie_embeddings, "initializer_range": cfg.init_std}
  attention = {"num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads,
               "head_dim": cfg.head_dim, "intermediate_size": cfg.mlp_dim}
  mamba = {"n_groups": cfg.ssm_groups, "conv_kernel": cfg.conv_width,
           "chunk_size": cfg.chunk_size, "layer_norm_epsilon": cfg.norm_eps,
           "use_bias": False, "use_conv_bias": True, "time_step_max": cfg.dt_max}
  if cfg.attention != "full" or cfg.layer_attention:
    fail("layer_attention" if cfg.layer_attention else "attention",
         "Hugging Face layers attend over the whole sequence; local and pooled blockwise "
         "attention (arXiv 2209.10052) have no Hugging Face counterpart")
  if family != "nemotron-nas":
    if not cfg.is_uniform:
      fail("layer_kv_heads" if cfg.layer_kv_heads else "layer_mlp_dims",
           f"{_FAMILY_ARCHITECTURE[family]} has one size for all layers; save a model of "
           "attention, MLP and linear layers as DeciLMForCausalLM")
    if "L" in cfg.pattern:
      fail("pattern", f"{_FAMILY_ARCHITECTURE[family]} has no linear ('L') layers; save a "
           "model of attention, MLP and linear layers as DeciLMForCausalLM")
  if family in ("llama", "qwen2", "nemotron-nas"):
    n = len(cfg.pattern) // 2
    if family != "nemotron-nas" and cfg.pattern != "*-" * n:
      fail("pattern", "a Llama/Qwen2 model is '*-' repeated")
    if "M" in cfg.pattern:
      fail("pattern", "DeciLM layers are attention ('*'), MLP ('-') and linear ('L')")
    if cfg.mlp_activation != "swiglu":
      fail("mlp_activation", "Llama/Qwen2/DeciLM MLPs are SwiGLU")
    if not cfg.use_rope:
      fail("use_rope", "Llama/Qwen2/DeciLM attention always applies RoPE")
    if family != "qwen2" and cfg.qkv_bias:
      fail("qkv_bias", f"{_FAMILY_ARCHITECTURE[family]} has no q/k/v-only bias; save a "
           "uniform transformer as Qwen2ForCausalLM")
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    max_positions = 32768
    if cfg.rope_llama3_scaling is not None:
      factor, low, high, original = cfg.rope_llama3_scaling
      rope.update(rope_type="llama3", factor=factor, low_freq_factor=low,
                  high_freq_factor=high, original_max_position_embeddings=original)
      max_positions = max(max_positions, int(original * factor))
    shared = {**common, "num_attention_heads": cfg.n_heads, "hidden_act": "silu",
              "rms_norm_eps": cfg.norm_eps, "max_position_embeddings": max_positions}
    if family == "nemotron-nas":
      if cfg.head_dim * cfg.n_heads != cfg.d_model:
        fail("head_dim", f"DeciLM heads are d_model // n_heads = {cfg.d_model // cfg.n_heads}"
             " wide")
      block_configs = _decilm_block_configs(cfg, fail)
      # transformers 4.44's LlamaConfig keys, which NVIDIA's DeciLMConfig extends.
      rope_scaling = ({k: v for k, v in rope.items() if k != "rope_theta"}
                      if cfg.rope_llama3_scaling is not None else None)
      return {**shared, "num_hidden_layers": len(block_configs),
              "num_key_value_heads": None, "intermediate_size": None,
              "head_dim": cfg.head_dim, "rope_theta": cfg.rope_theta,
              "rope_scaling": rope_scaling, "attention_bias": False, "mlp_bias": False,
              "block_configs": block_configs, "auto_map": _DECILM_AUTO_MAP}
    out = {**shared, **attention, "num_hidden_layers": n, "rope_parameters": rope}
    if family == "llama":
      out.update(attention_bias=False, mlp_bias=False)
    else:
      out.update(use_sliding_window=False, sliding_window=None, max_window_layers=n,
                 layer_types=["full_attention"] * n)
    return out
  if family == "mamba2":
    if set(cfg.pattern) != {"M"}:
      fail("pattern", "a Mamba2ForCausalLM model is 'M' repeated")
    if cfg.ssm_inner % cfg.d_model:
      fail("ssm_heads", f"HF Mamba2 needs ssm_heads*ssm_head_dim={cfg.ssm_inner} to be an "
           f"integer multiple (expand) of d_model={cfg.d_model}")
    return {**common, **mamba, "num_hidden_layers": cfg.n_layers,
            "num_heads": cfg.ssm_heads, "head_dim": cfg.ssm_head_dim,
            "expand": cfg.ssm_inner // cfg.d_model, "state_size": cfg.ssm_state,
            "hidden_act": "silu", "residual_in_fp32": True,
            "time_step_limit": list(cfg.dt_limit), "time_step_min": cfg.dt_min}
  # nemotron_h
  if "-" in cfg.pattern and cfg.mlp_activation != "relu2":
    fail("mlp_activation", "NemotronH MLPs are non-gated (relu2)")
  if "*" in cfg.pattern and (cfg.use_rope or cfg.qkv_bias):
    fail("use_rope" if cfg.use_rope else "qkv_bias",
         "NemotronH attention has no RoPE and no biases")
  if cfg.dt_limit[1] != float("inf") or cfg.dt_limit[0] < 0:
    fail("dt_limit", "transformers' NemotronH clamps dt to (time_step_min, inf) only")
  reverse = {v: k for k, v in _NEMOTRON_BLOCKS.items()}
  return {**common, **attention, **mamba,
          "layers_block_type": [reverse[c] for c in cfg.pattern],
          "mlp_hidden_act": "relu2", "mlp_bias": False, "attention_bias": False,
          "mamba_num_heads": cfg.ssm_heads, "mamba_head_dim": cfg.ssm_head_dim,
          "ssm_state_size": cfg.ssm_state, "mamba_hidden_act": "silu",
          "time_step_min": cfg.dt_limit[0],
          "time_step_max": max(cfg.dt_max, cfg.dt_limit[0]),
          "time_step_limit": list(cfg.dt_limit), "tie_word_embeddings": False}


# ----------------------------------------------------------------------- mapping table


@dataclasses.dataclass(frozen=True)
class _Layout:
  """How one of our arrays (shape ``shape``) sits in an HF tensor, along its axis 0.

  same    HF block == ours                      (embedding)
  flat    HF block == ours.reshape(-1)           (norm weights, biases, A_log, D, ...)
  linear  nn.Linear (out, in): ours is (*in, *out) with ``n_in`` leading input dims
  conv    depthwise nn.Conv1d (channels, 1, w): ours is (w, *channels); tap j of ours
          is HF weight[c, 0, j] (both multiply input l-(w-1)+j)
  """
  kind: str
  n_in: int = 1

  def hf_shape(self, shape) -> tuple[int, ...]:
    if self.kind == "same":
      return tuple(shape)
    if self.kind == "flat":
      return (math.prod(shape),)
    if self.kind == "linear":
      return (math.prod(shape[self.n_in:]), math.prod(shape[:self.n_in]))
    return (math.prod(shape[1:]), 1, shape[0])  # conv

  def to_hf(self, x: np.ndarray) -> np.ndarray:
    if self.kind == "same":
      return x
    if self.kind == "flat":
      return x.reshape(-1)
    if self.kind == "linear":
      return x.reshape(math.prod(x.shape[:self.n_in]), -1).T
    return x.reshape(x.shape[0], -1).T[:, None, :]  # conv

  def from_hf(self, block: np.ndarray, shape) -> np.ndarray:
    if self.kind in ("same", "flat"):
      return block.reshape(shape)
    if self.kind == "linear":
      return block.T.reshape(shape)
    return block[:, 0, :].T.reshape(shape)  # conv


_SAME, _FLAT, _CONV = _Layout("same"), _Layout("flat"), _Layout("conv")
_LINEAR, _LINEAR2 = _Layout("linear", 1), _Layout("linear", 2)


@dataclasses.dataclass(frozen=True)
class _Entry:
  hf_key: str
  paths: tuple[Path, ...]  # our arrays, concatenated along the HF tensor's axis 0
  layout: _Layout


def _attention_entries(prefix: str, i: int, bias: bool) -> list[_Entry]:
  out = [_Entry(f"{prefix}.{name}_proj.weight", (("layers", i, name),), _LINEAR)
         for name in ("q", "k", "v")]
  if bias:
    out += [_Entry(f"{prefix}.{name}_proj.bias", (("layers", i, f"{name}_bias"),), _FLAT)
            for name in ("q", "k", "v")]
  return out + [_Entry(f"{prefix}.o_proj.weight", (("layers", i, "o"),), _LINEAR2)]


def _mlp_entries(prefix: str, i: int, gated: bool) -> list[_Entry]:
  names = ("gate", "up", "down") if gated else ("up", "down")
  return [_Entry(f"{prefix}.{name}_proj.weight", (("layers", i, name),), _LINEAR)
          for name in names]


def _mamba_entries(prefix: str, i: int) -> list[_Entry]:
  layer = lambda *names: tuple(("layers", i, name) for name in names)
  return [
      _Entry(f"{prefix}.in_proj.weight", layer("in_z", "in_x", "in_B", "in_C", "in_dt"),
             _LINEAR),
      _Entry(f"{prefix}.conv1d.weight", layer("conv_x", "conv_B", "conv_C"), _CONV),
      _Entry(f"{prefix}.conv1d.bias", layer("conv_x_bias", "conv_B_bias", "conv_C_bias"),
             _FLAT),
      _Entry(f"{prefix}.dt_bias", layer("dt_bias"), _FLAT),
      _Entry(f"{prefix}.A_log", layer("A_log"), _FLAT),
      _Entry(f"{prefix}.D", layer("D"), _FLAT),
      _Entry(f"{prefix}.norm.weight", layer("gate_norm"), _FLAT),
      _Entry(f"{prefix}.out_proj.weight", layer("out"), _LINEAR2),
  ]


def _mapping(cfg: ModelConfig, family: str,
             blocks: Optional[list[Block]] = None) -> list[_Entry]:
  """The one table of (HF key ↔ our arrays) for ``family``, used to load and to save.

  blocks: a Llama-style family's decoder blocks as its file groups them (a DeciLM
  ``block_configs``); default the canonical blocks of cfg.pattern (``_blocks_of``).
  """
  entries = []
  norm = lambda key, i: _Entry(key, (("layers", i, "norm"),), _FLAT)
  linear = lambda key, i: _Entry(key, (("layers", i, "w"),), _LINEAR)
  if family in ("llama", "qwen2", "nemotron-nas"):
    entries.append(_Entry("model.embed_tokens.weight", (("embed",),), _SAME))
    layer = 0
    for block, (attention, mlp) in enumerate(blocks or _blocks_of(cfg.pattern)):
      prefix = f"model.layers.{block}"
      if attention:
        entries.append(norm(f"{prefix}.input_layernorm.weight", layer))
        entries += (_attention_entries(f"{prefix}.self_attn", layer, cfg.qkv_bias)
                    if attention == "*" else
                    [linear(f"{prefix}.self_attn.linear_attn.weight", layer)])
        layer += 1
      if mlp:
        entries.append(norm(f"{prefix}.post_attention_layernorm.weight", layer))
        entries += (_mlp_entries(f"{prefix}.mlp", layer, gated=True) if mlp == "-" else
                    [linear(f"{prefix}.mlp.linear_mlp.weight", layer)])
        layer += 1
    entries.append(_Entry("model.norm.weight", (("final_norm",),), _FLAT))
  else:  # mamba2, nemotron_h
    entries.append(_Entry("backbone.embeddings.weight", (("embed",),), _SAME))
    for i, kind in enumerate(cfg.pattern):
      prefix = f"backbone.layers.{i}"
      entries.append(norm(f"{prefix}.norm.weight", i))
      if kind == "M":
        entries += _mamba_entries(f"{prefix}.mixer", i)
      elif kind == "*":
        entries += _attention_entries(f"{prefix}.mixer", i, cfg.qkv_bias)
      else:
        entries += _mlp_entries(f"{prefix}.mixer", i, gated=cfg.mlp_activation == "swiglu")
    entries.append(_Entry("backbone.norm_f.weight", (("final_norm",),), _FLAT))
  if not cfg.tie_embeddings:
    entries.append(_Entry("lm_head.weight", (("lm_head",),), _LINEAR))
  return entries


def _spec_shapes(cfg: ModelConfig) -> dict[Path, tuple[int, ...]]:
  flat, _ = jax.tree_util.tree_flatten_with_path(lm.param_specs(cfg), is_leaf=P.is_spec)
  return {_path(kp): spec.shape for kp, spec in flat}


def _path(keypath) -> Path:
  return tuple(getattr(k, "key", getattr(k, "idx", None)) for k in keypath)


def _path_str(path: Path) -> str:
  return "params" + "".join(f"[{p!r}]" for p in path)


def _check_table(table: list[_Entry], shapes: dict):
  covered = [p for e in table for p in e.paths]
  if sorted(map(str, covered)) != sorted(map(str, shapes)):
    raise AssertionError(  # a bug in this module, not in the checkpoint
        f"HF mapping table does not cover the param tree exactly: "
        f"missing {sorted(set(map(str, shapes)) - set(map(str, covered)))}, "
        f"extra {sorted(set(map(str, covered)) - set(map(str, shapes)))}")


def _entry_hf_shape(entry: _Entry, shapes: dict) -> tuple[int, ...]:
  parts = [entry.layout.hf_shape(shapes[p]) for p in entry.paths]
  return (sum(s[0] for s in parts),) + parts[0][1:]


def _set(tree, path: Path, value):
  for key in path[:-1]:
    tree = tree[key]
  tree[path[-1]] = value


# ---------------------------------------------------------------------------- loading


def _stored_keys(path: str, family: str) -> dict[str, tuple[str, str]]:
  """Normalised HF key → (safetensors file, key as stored), from the index or the files."""
  index = os.path.join(path, "model.safetensors.index.json")
  if os.path.exists(index):
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
      raise ValueError(f"{index}: no 'weight_map' object")
    stored = {k: os.path.join(path, v) for k, v in weight_map.items()}
  else:
    single = os.path.join(path, "model.safetensors")
    files = [single] if os.path.exists(single) else sorted(
        glob.glob(os.path.join(path, "*.safetensors")))
    if not files:
      raise FileNotFoundError(f"no model.safetensors, model.safetensors.index.json or "
                              f"*.safetensors in {path}")
    stored = {}
    for file in files:
      with _open_safetensors(file) as f:
        stored.update((key, file) for key in f.keys())

  def normalise(key):  # transformers renames NemotronH's backbone. → model. in memory
    if family == "nemotron_h" and key.startswith("model."):
      return "backbone." + key[len("model."):]
    return key
  return {normalise(k): (file, k) for k, file in stored.items()}


def _ignorable(key: str, cfg: ModelConfig, family: str) -> bool:
  if key.endswith("rotary_emb.inv_freq"):   # buffer saved by old Llama checkpoints
    return True
  if key == "lm_head.weight" and cfg.tie_embeddings:   # some tied checkpoints keep it
    return True
  return family == "nemotron_h" and key.startswith("mtp.")  # MTP heads, unused by HF too


def _read_json(path: str) -> dict:
  """A JSON object from ``path``; a ValueError names the file and the position."""
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: invalid JSON ({e.msg} at line {e.lineno} column "
                     f"{e.colno})") from None
  except UnicodeDecodeError:
    raise ValueError(f"{path}: not UTF-8 text") from None
  if not isinstance(value, dict):
    raise ValueError(f"{path}: want a JSON object, got {type(value).__name__}")
  return value


def _open_safetensors(file: str):
  """``safe_open`` (flax arrays: numpy cannot read bf16); a ValueError names the file."""
  try:
    return safetensors.safe_open(file, framework="flax")
  except safetensors.SafetensorError as e:
    raise ValueError(f"{file}: not a readable safetensors file ({e})") from None


def read_config(path: str) -> dict:
  """The ``config.json`` of a Hugging Face directory as a dict."""
  config_path = os.path.join(path, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{config_path} not found")
  return _decode_floats(_read_json(config_path))


def load_hf_checkpoint(path: str, dtype="float32", *, dt_floor: str = "time_step_limit"
                       ) -> tuple[dict, ModelConfig]:
  """Our (params, cfg) from a local HF directory (config.json + safetensors).

  Reads one ``model.safetensors`` or the shards named in ``model.safetensors.index.json``
  (bf16 included), converts every tensor through the family's mapping table and casts
  to ``dtype``; cfg gets ``param_dtype = dtype = dtype``. ``dt_floor`` is
  'time_step_limit' (NVIDIA's NemotronH, the default) or 'time_step_min' (transformers'
  NemotronH); see ``config_from_hf``. Raises ValueError naming the file and key for a
  missing key that sizes the model (``_SIZING_KEYS``), and for missing, unexpected or
  wrongly shaped tensors.
  """
  config_path = os.path.join(path, "config.json")
  raw = read_config(path)
  dtype_name = jnp.dtype(dtype).name
  try:
    family = hf_family(raw)
    _check_sizing_keys(raw, family)
    cfg = config_from_hf(raw, dt_floor=dt_floor).replace(param_dtype=dtype_name,
                                                         dtype=dtype_name)
  except ValueError as e:
    raise ValueError(f"{config_path}: {e}") from None
  blocks = (_decilm_blocks({**_HF_DEFAULTS[family], **raw})[0]
            if family == "nemotron-nas" else None)
  table = _mapping(cfg, family, blocks)
  shapes = _spec_shapes(cfg)
  _check_table(table, shapes)

  stored = _stored_keys(path, family)
  zero_filled = []
  if family in ("mamba2", "nemotron_h") and not raw.get(
      "use_conv_bias", raw.get("mamba_conv_bias", _HF_DEFAULTS[family]["use_conv_bias"])):
    zero_filled = [e for e in table if e.hf_key.endswith("conv1d.bias")]
    table = [e for e in table if e not in zero_filled]
  expected = {e.hf_key for e in table}
  missing = sorted(expected - set(stored))
  unexpected = sorted(k for k in set(stored) - expected if not _ignorable(k, cfg, family))
  if missing or unexpected:
    raise ValueError(
        f"{path}: checkpoint keys do not match {_FAMILY_ARCHITECTURE[family]} with "
        f"pattern {cfg.pattern!r}: missing {missing}; unexpected "
        f"{[f'{stored[k][1]} (in {os.path.basename(stored[k][0])})' for k in unexpected]}")

  target = np.dtype(jnp.dtype(dtype))
  params = jax.tree.map(lambda _: None, lm.param_specs(cfg), is_leaf=P.is_spec)
  by_file: dict[str, list[_Entry]] = {}
  for entry in table:
    by_file.setdefault(stored[entry.hf_key][0], []).append(entry)
  for file, entries in by_file.items():
    with _open_safetensors(file) as f:
      for entry in entries:
        key = stored[entry.hf_key][1]
        try:
          tensor = np.asarray(f.get_tensor(key))
        except safetensors.SafetensorError as e:
          raise ValueError(f"{file}: tensor {key} is unreadable ({e})") from None
        want = _entry_hf_shape(entry, shapes)
        if tuple(tensor.shape) != want:
          raise ValueError(
              f"{file}: {key} has shape {tuple(tensor.shape)}, expected {want} for "
              f"{[_path_str(p) for p in entry.paths]} (config: {config_path})")
        offset = 0
        for p in entry.paths:
          rows = entry.layout.hf_shape(shapes[p])[0]
          part = entry.layout.from_hf(tensor[offset:offset + rows], shapes[p])
          _set(params, p, jnp.asarray(part.astype(target)))
          offset += rows
  for entry in zero_filled:
    for p in entry.paths:
      _set(params, p, jnp.zeros(shapes[p], target))
  return params, cfg


# ----------------------------------------------------------------------------- saving


def _resolve_family(cfg: ModelConfig, architecture: Optional[str]) -> str:
  if architecture is None:
    if set(cfg.pattern) == {"M"}:
      return "mamba2"
    if cfg.pattern == "*-" * (len(cfg.pattern) // 2) and cfg.use_rope and cfg.is_uniform:
      return "qwen2" if cfg.qkv_bias else "llama"
    if "M" not in cfg.pattern and cfg.use_rope:
      return "nemotron-nas"
    return "nemotron_h"
  if architecture in ARCHITECTURES:
    return ARCHITECTURES[architecture]
  if architecture in _FAMILY_ARCHITECTURE:
    return architecture
  raise ValueError(f"architecture={architecture!r} is not supported; use one of "
                   f"{sorted(ARCHITECTURES)}")


def _adapt(params: dict, cfg: ModelConfig, family: str) -> tuple[dict, ModelConfig]:
  """Exact rewrites for what a family cannot express otherwise."""
  if family == "nemotron_h" and cfg.tie_embeddings:
    # NemotronHForCausalLM never ties (_tied_weights_keys = {}): store the head.
    params = {**params, "lm_head": jnp.asarray(params["embed"]).T}
    cfg = cfg.replace(tie_embeddings=False)
  if family == "qwen2" and not cfg.qkv_bias:
    # Qwen2 attention always has q/k/v biases: store zeros.
    layers = [dict(layer) for layer in params["layers"]]
    for layer, kind in zip(layers, cfg.pattern):
      if kind == "*":
        for name, heads in (("q", cfg.n_heads), ("k", cfg.n_kv_heads), ("v", cfg.n_kv_heads)):
          layer[f"{name}_bias"] = jnp.zeros((heads, cfg.head_dim), layer[name].dtype)
    params = {**params, "layers": layers}
    cfg = cfg.replace(qkv_bias=True)
  return params, cfg


@dataclasses.dataclass(frozen=True)
class TokenIds:
  """The special token ids of the tokenizer a model is saved with: bos, the ids that
  end a generation (eos, and e.g. a chat template's end of turn) and pad."""
  bos: int
  eos: tuple[int, ...]
  pad: int

  def as_hf(self) -> dict:
    """The ``*_token_id`` keys of transformers' configs and GenerationConfig."""
    eos = self.eos[0] if len(self.eos) == 1 else list(self.eos)
    return {"bos_token_id": self.bos, "eos_token_id": eos, "pad_token_id": self.pad}


def _check_token_ids(token_ids: TokenIds, vocab_size: int):
  for role, ids in (("bos", (token_ids.bos,)), ("eos", token_ids.eos),
                    ("pad", (token_ids.pad,))):
    if not ids or any(not 0 <= i < vocab_size for i in ids):
      raise ValueError(f"token_ids.{role}={getattr(token_ids, role)!r}: want ids in "
                       f"[0, {vocab_size}) (the model's vocab_size)")


def save_hf_checkpoint(params: dict, cfg: ModelConfig, path: str,
                       architecture: Optional[str] = None, dtype=None, *,
                       token_ids: Optional[TokenIds] = None) -> str:
  """Writes ``config.json`` + ``model.safetensors`` that transformers reloads.

  architecture: 'LlamaForCausalLM' | 'Qwen2ForCausalLM' | 'DeciLMForCausalLM' |
    'Mamba2ForCausalLM' | 'NemotronHForCausalLM' (or the family name); default inferred
    from cfg: Mamba2 for 'M' only, Llama/Qwen2 for a uniform '*-' repeated, DeciLM for
    other RoPE models without Mamba layers (per-layer sizes, 'L' layers), else NemotronH.
  dtype: of the stored tensors; default cfg.param_dtype.
  token_ids: the tokenizer's special ids, for config.json and a
    ``generation_config.json``; None writes neither.
  Raises ValueError if cfg is not representable in that architecture, a parameter is
  missing or wrongly shaped or a token id is outside the vocabulary. Returns ``path``.
  """
  family = _resolve_family(cfg, architecture)
  dtype = np.dtype(jnp.dtype(dtype or cfg.param_dtype))
  hf_config = _hf_config(cfg, family, dtype.name)  # fails early if not representable
  if token_ids is not None:
    _check_token_ids(token_ids, cfg.vocab_size)
    hf_config.update(token_ids.as_hf())
  shapes = _spec_shapes(cfg)
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  given = {_path(kp): leaf for kp, leaf in flat}
  extra = sorted(map(_path_str, set(given) - set(shapes)))
  missing = sorted(map(_path_str, set(shapes) - set(given)))
  if extra or missing:
    raise ValueError(f"params do not match cfg (pattern {cfg.pattern!r}, tie_embeddings="
                     f"{cfg.tie_embeddings}): missing {missing}; unexpected {extra}")
  for p, x in given.items():
    if tuple(x.shape) != tuple(shapes[p]):
      raise ValueError(f"{_path_str(p)} has shape {tuple(x.shape)}, expected "
                       f"{tuple(shapes[p])} for cfg")

  params, cfg = _adapt(params, cfg, family)
  table = _mapping(cfg, family)
  shapes = _spec_shapes(cfg)
  _check_table(table, shapes)
  flat, _ = jax.tree_util.tree_flatten_with_path(params)
  given = {_path(kp): leaf for kp, leaf in flat}
  tensors = {}
  for entry in table:
    blocks = [entry.layout.to_hf(np.asarray(given[p]).astype(dtype)) for p in entry.paths]
    tensors[entry.hf_key] = np.ascontiguousarray(np.concatenate(blocks, axis=0))

  os.makedirs(path, exist_ok=True)
  safetensors.numpy.save_file(tensors, os.path.join(path, "model.safetensors"),
                              metadata={"format": "pt"})
  _write_json(os.path.join(path, "config.json"), _encode_floats(hf_config))
  if token_ids is not None:
    _write_json(os.path.join(path, "generation_config.json"), token_ids.as_hf())
  return path


def _write_json(path: str, value: dict) -> None:
  with open(path, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
