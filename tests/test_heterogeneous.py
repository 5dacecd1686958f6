"""Heterogeneous layers (Llama-Nemotron's Puzzle, arXiv 2505.00949): DeciLM checkpoints in
and out (model/hf.py), cached decoding, the driver's loops with resume, sharding, a TPU
compile and FLOP counts for models whose layers differ in KV heads, MLP width and kind."""

import importlib.util
import json
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy as safetensors_numpy

from configs import grpo as grpo_config, rlp as rlp_config, sft as sft_config, tiny_hybrid
from model import config as mcfg
from model import generate as gen
from model import hf
from model import lm
from train import aot
from train import checkpoint as checkpoint_lib
from train import config as run_config
from train import driver

VOCAB, HIDDEN, HEADS = 256, 64, 4
HEAD_DIM = HIDDEN // HEADS
_forward = jax.jit(lm.forward, static_argnames=("cfg",))


# ------------------------------------------------------------------ DeciLM checkpoints


def attention(n_heads_in_group=None, no_op=False, replace_with_linear=False):
  """An AttentionConfig as NVIDIA's config.json writes it (every field)."""
  return {"n_heads_in_group": n_heads_in_group, "no_op": no_op,
          "replace_with_linear": replace_with_linear, "num_sink_tokens": None,
          "sparsify": None, "unshifted_sink": False,
          "use_prefill_window_in_sink_attention": False, "window_length": None}


def ffn(ffn_mult=None, no_op=False, replace_with_linear=False):
  return {"ffn_mult": ffn_mult, "no_op": no_op, "replace_with_linear": replace_with_linear,
          "sparsify": None}


# MLP widths int(2/3 · ffn_mult · 64) rounded up to a multiple of 256 (NVIDIA's
# _ffn_mult_to_intermediate_size).
WIDTHS = {6.0: 256, 12.0: 512}
UNIFORM_BLOCKS = [{"attention": attention(2), "ffn": ffn(6.0)}] * 2
# Fewer KV heads (4 // 4 = 1), a narrower MLP, no-op attention, linear attention and MLP,
# a block of two no-ops: pattern '*-' '-' 'L' '*L' ''.
PUZZLE_BLOCKS = [
    {"attention": attention(2), "ffn": ffn(12.0)},
    {"attention": attention(no_op=True), "ffn": ffn(6.0)},
    {"attention": attention(replace_with_linear=True), "ffn": ffn(no_op=True)},
    {"attention": attention(4), "ffn": ffn(replace_with_linear=True)},
    {"attention": attention(no_op=True), "ffn": ffn(no_op=True)},
]
PUZZLE_CFG = dict(pattern="*--L*L", n_kv_heads=2, layer_kv_heads=(2, 1), mlp_dim=512,
                  layer_mlp_dims=(512, 256))


def decilm_config(blocks, **changes):
  """A DeciLM config.json like NVIDIA's (num_key_value_heads and intermediate_size null,
  rope in transformers 4.44's keys)."""
  return {"architectures": ["DeciLMForCausalLM"], "model_type": "nemotron-nas",
          "auto_map": {"AutoConfig": "configuration_decilm.DeciLMConfig",
                       "AutoModelForCausalLM": "modeling_decilm.DeciLMForCausalLM"},
          "vocab_size": VOCAB, "hidden_size": HIDDEN, "num_attention_heads": HEADS,
          "num_hidden_layers": len(blocks), "num_key_value_heads": None,
          "intermediate_size": None, "hidden_act": "silu", "rms_norm_eps": 1e-5,
          "rope_theta": 500.0, "rope_scaling": None, "max_position_embeddings": 4096,
          "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
          "initializer_range": 0.02, "pretraining_tp": 1, "block_configs": blocks, **changes}


def decilm_tensors(blocks, seed=0) -> dict[str, np.ndarray]:
  """Random HF tensors (nn.Linear (out, in) layout) for ``blocks``, norms around 1."""
  rng = np.random.default_rng(seed)
  normal = lambda *shape: (0.15 * rng.standard_normal(shape)).astype(np.float32)
  norm = lambda: rng.uniform(0.5, 1.5, HIDDEN).astype(np.float32)
  tensors = {"model.embed_tokens.weight": normal(VOCAB, HIDDEN),
             "model.norm.weight": norm(), "lm_head.weight": normal(VOCAB, HIDDEN)}
  for i, block in enumerate(blocks):
    prefix = f"model.layers.{i}"
    attn, mlp = block["attention"], block["ffn"]
    if not attn["no_op"]:
      tensors[f"{prefix}.input_layernorm.weight"] = norm()
      if attn["replace_with_linear"]:
        tensors[f"{prefix}.self_attn.linear_attn.weight"] = normal(HIDDEN, HIDDEN)
      else:
        kv = HEADS // attn["n_heads_in_group"] * HEAD_DIM
        for name, rows in (("q", HIDDEN), ("k", kv), ("v", kv)):
          tensors[f"{prefix}.self_attn.{name}_proj.weight"] = normal(rows, HIDDEN)
        tensors[f"{prefix}.self_attn.o_proj.weight"] = normal(HIDDEN, HIDDEN)
    if not mlp["no_op"]:
      tensors[f"{prefix}.post_attention_layernorm.weight"] = norm()
      if mlp["replace_with_linear"]:
        tensors[f"{prefix}.mlp.linear_mlp.weight"] = normal(HIDDEN, HIDDEN)
      else:
        width = WIDTHS[mlp["ffn_mult"]]
        tensors[f"{prefix}.mlp.gate_proj.weight"] = normal(width, HIDDEN)
        tensors[f"{prefix}.mlp.up_proj.weight"] = normal(width, HIDDEN)
        tensors[f"{prefix}.mlp.down_proj.weight"] = normal(HIDDEN, width)
  return tensors


def write_checkpoint(path, config, tensors):
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  safetensors_numpy.save_file(tensors, os.path.join(path, "model.safetensors"))
  return str(path)


def read_tensors(path) -> dict[str, np.ndarray]:
  return safetensors_numpy.load_file(os.path.join(path, "model.safetensors"))


def decilm_reference_logits(tensors, config, tokens) -> np.ndarray:
  """NVIDIA's DeciLMForCausalLM forward (modeling_decilm.py) in float64 numpy, read off
  the HF tensors: per decoder layer an attention sub-block (none, linear, or GQA with
  rotate-half RoPE and num_attention_heads // n_heads_in_group KV heads), then an FFN
  sub-block (none, linear or SwiGLU), each ``x + f(rms_norm(x))``."""
  t = lambda key: tensors[key].astype(np.float64)
  eps, (b, l) = config["rms_norm_eps"], tokens.shape
  norm = lambda x, w: w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
  inv_freq = 1.0 / config["rope_theta"] ** (np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
  angles = np.arange(l)[:, None] * inv_freq[None, :]
  angles = np.concatenate([angles, angles], axis=-1)[None, :, None, :]     # 1 l 1 e
  half = HEAD_DIM // 2
  rope = lambda a: a * np.cos(angles) + np.concatenate(
      [-a[..., half:], a[..., :half]], axis=-1) * np.sin(angles)
  future = np.triu(np.ones((l, l), bool), k=1)
  x = t("model.embed_tokens.weight")[tokens]
  for i, block in enumerate(config["block_configs"]):
    prefix = f"model.layers.{i}"
    attn, mlp = block["attention"], block["ffn"]
    if not attn["no_op"]:
      h = norm(x, t(f"{prefix}.input_layernorm.weight"))
      if attn["replace_with_linear"]:
        x = x + h @ t(f"{prefix}.self_attn.linear_attn.weight").T
      else:
        group = attn["n_heads_in_group"]
        project = lambda name, heads: (h @ t(f"{prefix}.self_attn.{name}_proj.weight").T
                                       ).reshape(b, l, heads, HEAD_DIM)
        q = rope(project("q", HEADS))
        k = np.repeat(rope(project("k", HEADS // group)), group, axis=2)   # repeat_kv
        v = np.repeat(project("v", HEADS // group), group, axis=2)
        scores = np.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(HEAD_DIM)
        scores = np.where(future, -np.inf, scores)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        heads = np.einsum("bhqk,bkhe->bqhe", probs, v).reshape(b, l, HIDDEN)
        x = x + heads @ t(f"{prefix}.self_attn.o_proj.weight").T
    if not mlp["no_op"]:
      h = norm(x, t(f"{prefix}.post_attention_layernorm.weight"))
      if mlp["replace_with_linear"]:
        x = x + h @ t(f"{prefix}.mlp.linear_mlp.weight").T
      else:
        gate = h @ t(f"{prefix}.mlp.gate_proj.weight").T
        up = h @ t(f"{prefix}.mlp.up_proj.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ t(f"{prefix}.mlp.down_proj.weight").T
  return norm(x, t("model.norm.weight")) @ t("lm_head.weight").T


def random_params(cfg, seed=0) -> dict:
  """Random float32 params of ``cfg`` from numpy (``lm.init`` compiles an op per
  shape), norms around 1."""
  rng = np.random.default_rng(seed)
  def leaf(path, spec):
    if path[-1].key.endswith("norm"):
      return rng.uniform(0.5, 1.5, spec.shape).astype(np.float32)
    return (0.2 * rng.standard_normal(spec.shape)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(leaf, lm.abstract_params(cfg))


def tokens_for(seed=0, batch=2, length=12):
  return np.random.default_rng(seed).integers(0, VOCAB, (batch, length)).astype(np.int32)


def ours(params, cfg, tokens) -> np.ndarray:
  return np.asarray(_forward(params, jnp.asarray(tokens), cfg=cfg)[0])


def rel_diff(a, b) -> float:
  return float(np.abs(a - b).max() / np.abs(b).max())


def test_uniform_decilm_is_the_llama_model_with_the_same_tensors(tmp_path):
  """Every layer normal attention with one n_heads_in_group and one ffn_mult: the same
  config, params and logits as LlamaForCausalLM over the same safetensors (ours and
  transformers'), and saved back as DeciLM it writes those tensors again."""
  scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 8}
  config = decilm_config(UNIFORM_BLOCKS, rope_scaling=scaling)
  tensors = decilm_tensors(UNIFORM_BLOCKS)
  decilm_path = write_checkpoint(tmp_path / "decilm", config, tensors)
  llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": 256,
           "num_hidden_layers": 2, "num_attention_heads": HEADS, "num_key_value_heads": 2,
           "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
           "rope_parameters": {**scaling, "rope_theta": 500.0}, "tie_word_embeddings": False}
  llama_path = write_checkpoint(tmp_path / "llama", llama, tensors)

  params, cfg = hf.load_hf_checkpoint(decilm_path)
  llama_params, llama_cfg = hf.load_hf_checkpoint(llama_path)
  assert cfg == llama_cfg and cfg.is_uniform and cfg.pattern == "*-*-"
  assert (cfg.n_kv_heads, cfg.mlp_dim, cfg.rope_llama3_scaling) == (2, 256, (8.0, 1.0, 4.0, 8))
  chex.assert_trees_all_equal(params, llama_params)
  tokens = tokens_for()
  logits = ours(params, cfg, tokens)
  np.testing.assert_array_equal(logits, ours(llama_params, llama_cfg, tokens))

  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model = transformers.AutoModelForCausalLM.from_pretrained(llama_path).eval()
  with torch.no_grad():
    reference = model(torch.tensor(tokens, dtype=torch.long)).logits.numpy()
  assert rel_diff(logits, reference) <= 1e-4

  saved = hf.save_hf_checkpoint(params, cfg, str(tmp_path / "saved"),
                                architecture="DeciLMForCausalLM")
  chex.assert_trees_all_equal(read_tensors(saved), tensors)
  written = hf.read_config(saved)
  assert written["block_configs"] == UNIFORM_BLOCKS and written["rope_scaling"] == scaling
  assert hf.load_hf_checkpoint(saved)[1] == cfg
  # A uniform transformer still saves as Llama by default.
  assert hf.read_config(hf.save_hf_checkpoint(params, cfg, str(tmp_path / "default"))
                        )["architectures"] == ["LlamaForCausalLM"]


def test_nemotron_super_shaped_config():
  """Llama-3.3-Nemotron-Super-49B's sizes: 64 heads of 8192 // 64 = 128, 8 KV heads,
  ffn_mult 2.625 → 14336 wide, 1.95 → int(10649.6) = 10649 → 10752."""
  blocks = [{"attention": attention(8), "ffn": ffn(2.625)},
            {"attention": attention(no_op=True), "ffn": ffn(1.95)}]
  cfg = hf.config_from_hf(decilm_config(blocks, hidden_size=8192, num_attention_heads=64,
                                        vocab_size=128256))
  assert (cfg.pattern, cfg.head_dim, cfg.n_kv_heads, cfg.layer_mlp_dims) == (
      "*--", 128, 8, (14336, 10752))


@pytest.fixture(scope="module")
def puzzle_checkpoint(tmp_path_factory):
  """(path, config.json, tensors) of the heterogeneous DeciLM checkpoint."""
  config, tensors = decilm_config(PUZZLE_BLOCKS), decilm_tensors(PUZZLE_BLOCKS, seed=1)
  path = write_checkpoint(tmp_path_factory.mktemp("puzzle"), config, tensors)
  return path, config, tensors


def test_heterogeneous_decilm_loads_computes_and_saves_back(puzzle_checkpoint, tmp_path):
  path, config, tensors = puzzle_checkpoint
  params, cfg = hf.load_hf_checkpoint(path)
  assert cfg == mcfg.ModelConfig(
      vocab_size=VOCAB, d_model=HIDDEN, n_heads=HEADS, head_dim=HEAD_DIM, rope_theta=500.0,
      norm_eps=1e-5, **PUZZLE_CFG)
  assert [layer["k"].shape[1] for layer, c in zip(params["layers"], cfg.pattern)
          if c == "*"] == [2, 1]
  assert params["layers"][3]["w"].shape == params["layers"][5]["w"].shape == (HIDDEN, HIDDEN)
  tokens = tokens_for(seed=1)
  logits = ours(params, cfg, tokens)
  assert rel_diff(logits, decilm_reference_logits(tensors, config, tokens)) <= 1e-5

  # Saved in the same blocks (the trailing two no-ops go): the same tensors again.
  saved = hf.save_hf_checkpoint(params, cfg, str(tmp_path / "saved"))
  written = hf.read_config(saved)
  assert written["architectures"] == ["DeciLMForCausalLM"]
  assert written["block_configs"] == PUZZLE_BLOCKS[:4]
  chex.assert_trees_all_equal(read_tensors(saved), tensors)
  reloaded, reloaded_cfg = hf.load_hf_checkpoint(saved)
  assert reloaded_cfg == cfg
  chex.assert_trees_all_equal(reloaded, params)


def test_save_refuses_what_an_architecture_cannot_hold(puzzle_checkpoint):
  params, cfg = hf.load_hf_checkpoint(puzzle_checkpoint[0])
  for architecture in ("LlamaForCausalLM", "Qwen2ForCausalLM", "NemotronHForCausalLM"):
    with pytest.raises(ValueError, match=rf"cannot save as {architecture}: ModelConfig"
                       r".layer_kv_heads=\(2, 1\): .*has one size for all layers; save .* "
                       "as DeciLMForCausalLM"):
      hf.save_hf_checkpoint(params, cfg, "/nonexistent", architecture=architecture)
  uniform_cfg = cfg.replace(layer_kv_heads=(), layer_mlp_dims=())
  with pytest.raises(ValueError, match=r"NemotronHForCausalLM: ModelConfig.pattern='\*--L\*L'"
                     r": NemotronHForCausalLM has no linear \('L'\) layers"):
    hf.save_hf_checkpoint(random_params(uniform_cfg), uniform_cfg, "/nonexistent",
                          architecture="NemotronHForCausalLM")
  narrow_cfg = cfg.replace(layer_mlp_dims=(512, 200))
  with pytest.raises(ValueError, match=r"layer_mlp_dims=\(512, 200\): layer 2's width 200 "
                     "is not a DeciLM width"):
    hf.save_hf_checkpoint(random_params(narrow_cfg), narrow_cfg, "/nonexistent")
  hybrid_cfg = mcfg.tiny(pattern="M*-", use_rope=True)
  with pytest.raises(ValueError, match=r"DeciLMForCausalLM: ModelConfig.pattern='M\*-'"):
    hf.save_hf_checkpoint(random_params(hybrid_cfg), hybrid_cfg, "/nonexistent",
                          architecture="DeciLMForCausalLM")


def _change(path, value):
  """A function that sets ``path`` (keys and indices) in a config to ``value``."""
  def apply(config):
    target = config
    for key in path[:-1]:
      target = target[key]
    target[path[-1]] = value
  return apply


@pytest.mark.parametrize("change, message", [
    (lambda c: c["block_configs"].pop(), "block_configs has 4 entries: want one object per "
     "decoder layer (num_hidden_layers=5)"),
    (_change(("block_configs", 3), "attention"),
     "block_configs[3]='attention': want an object with 'attention' and 'ffn'"),
    (_change(("block_configs", 1, "moe"), {}),
     "block_configs[1].moe={}: unknown sub-block; a block has 'attention' and 'ffn'"),
    (_change(("block_configs", 0, "attention", "num_key_value_heads"), 2),
     "block_configs[0].attention.num_key_value_heads=2: unknown field; known: "),
    (_change(("block_configs", 2, "attention", "no_op"), True),
     "block_configs[2].attention={'n_heads_in_group': None, 'no_op': True, "
     "'replace_with_linear': True,"),
    (_change(("block_configs", 3, "attention", "n_heads_in_group"), 3),
     "block_configs[3].attention.n_heads_in_group=3: want a positive integer that divides "
     "num_attention_heads=4"),
    (_change(("block_configs", 0, "attention", "window_length"), 128),
     "block_configs[0].attention.window_length=128: sliding-window and sink attention are "
     "not implemented"),
    (_change(("block_configs", 1, "ffn", "ffn_mult"), None),
     "block_configs[1].ffn.ffn_mult=None: want a number that gives a positive width"),
    (_change(("block_configs", 4, "ffn", "no_op"), "yes"),
     "block_configs[4].ffn.no_op='yes': want true or false"),
    (_change(("head_dim",), 32), "head_dim=32 is not supported: DeciLM heads are "
     "hidden_size // num_attention_heads = 16 wide"),
    (lambda c: c.pop("block_configs"), "no 'block_configs': a DeciLMForCausalLM config "
     "must set it"),
], ids=["length", "entry", "sub_block", "field", "no_op_and_linear", "n_heads_in_group",
        "window_length", "ffn_mult", "no_op", "head_dim", "missing"])
def test_bad_block_configs_are_named_before_any_tensor_is_read(change, message, tmp_path):
  config = decilm_config(json.loads(json.dumps(PUZZLE_BLOCKS)))
  change(config)
  path = write_checkpoint(tmp_path, config, {})
  with open(os.path.join(path, "model.safetensors"), "wb") as f:
    f.write(b"not safetensors")   # the error comes first, reading it would fail
  with pytest.raises(ValueError) as error:
    hf.load_hf_checkpoint(path)
  assert str(error.value).startswith(f"{os.path.join(path, 'config.json')}: ")
  assert message in str(error.value), str(error.value)


def test_init_checkpoint_compares_the_sizes_of_each_layer(puzzle_checkpoint):
  path = puzzle_checkpoint[0]
  wanted = mcfg.ModelConfig(vocab_size=VOCAB, d_model=HIDDEN, n_heads=HEADS,
                            head_dim=HEAD_DIM, rope_theta=500.0, norm_eps=1e-5, **PUZZLE_CFG)
  # n_kv_heads / mlp_dim say nothing about the weights once every layer has its own.
  params, step = checkpoint_lib.load_params(
      path, wanted.replace(n_kv_heads=4, mlp_dim=64), None)
  assert step is None and params["layers"][4]["k"].shape == (HIDDEN, 1, HEAD_DIM)
  with pytest.raises(checkpoint_lib.CheckpointMismatchError,
                     match=r"has model.layer_kv_heads=\(2, 1\), the run config has \(1, 2\)"
                     r": set --config.model.layer_kv_heads to match"):
    checkpoint_lib.load_params(path, wanted.replace(layer_kv_heads=(1, 2)), None)
  with pytest.raises(checkpoint_lib.CheckpointMismatchError,
                     match=r"has model.layer_mlp_dims=\(512, 256\), the run config has "
                     r"\(512, 512\)"):
    checkpoint_lib.load_params(path, wanted.replace(layer_mlp_dims=()), None)


# -------------------------------------------------------------------- through the stack


# Per-layer KV heads and MLP widths, an 'L' layer, attention layers without their MLP.
HETERO = mcfg.tiny_transformer(vocab_size=64, d_model=32, n_heads=4, head_dim=8,
                               pattern="*-L**-", layer_kv_heads=(2, 1, 4),
                               layer_mlp_dims=(64, 96))


def test_cached_decoding_equals_the_full_forward():
  params = random_params(HETERO, seed=3)
  tokens = jnp.asarray(np.random.default_rng(3).integers(0, 64, (2, 11)), jnp.int32)
  full, _ = _forward(params, tokens, cfg=HETERO)
  cache = lm.init_cache(HETERO, batch=2, max_len=16)
  assert [c["k"].shape[1] for c, kind in zip(cache["layers"], HETERO.pattern)
          if kind == "*"] == [2, 1, 4]
  prefill, cache = _forward(params, tokens[:, :6], cfg=HETERO, cache=cache)
  cached = [prefill]
  for i in range(6, 11):
    logits, cache = _forward(params, tokens[:, i:i + 1], cfg=HETERO, cache=cache)
    cached.append(logits)
  np.testing.assert_allclose(np.concatenate(cached, axis=1), full, atol=1e-5, rtol=1e-5)

  prompts = ([5, 9, 14, 3], [11, 4])
  prompt, mask = gen.left_pad(prompts)
  out = gen.generate(params, prompt, mask, jax.random.PRNGKey(0), model_cfg=HETERO,
                     sampling=gen.SamplingConfig(max_new_tokens=4, temperature=0.0))
  sequences = [list(p) for p in prompts]   # argmax of the uncached forward, step by step
  for _ in range(4):
    padded = jnp.asarray([seq + [0] * (11 - len(seq)) for seq in sequences], jnp.int32)
    logits = _forward(params, padded, cfg=HETERO)[0]   # right padding is causal-safe
    for row, seq in enumerate(sequences):
      seq.append(int(jnp.argmax(logits[row, len(seq) - 1])))
  assert out.tokens.tolist() == [seq[len(p):] for seq, p in zip(sequences, prompts)]


def test_flops_count_each_layer_at_its_own_size():
  seq_len = 64
  d, e, vocab = HETERO.d_model, HETERO.head_dim, HETERO.vocab_size
  attention = lambda kv: d * 4 * e * 2 + 2 * d * kv * e      # q, o and k, v
  mlp = lambda f: 3 * d * f                                   # gate, up, down
  weights = (attention(2) + attention(1) + attention(4) + mlp(64) + mlp(96)
             + d * d + HETERO.n_layers * d + d + d * vocab)   # linear, norms, head
  scores = 3 * 2.0 * HETERO.n_heads * e * seq_len     # 3 attention layers, causal halves
  assert lm.flops_per_token(HETERO, seq_len) == 3 * (2.0 * weights + scores)


def driver_config(loop_module, **model):
  """``loop_module``'s config with a tiny heterogeneous model: 1 step of 8 × 64 tokens,
  no evaluation and no samples (tests/test_driver.py covers those)."""
  config = loop_module.get_config()
  config.model = run_config.model_section(
      "tiny", vocab_size=1024, d_model=32, n_heads=4, head_dim=8, use_rope=True,
      mlp_activation="swiglu", **model)
  config.train.update(steps=1, global_batch_size=8, seq_len=64, log_every=1)
  config.optimizer.warmup_steps = 0
  config.eval.records, config.eval.text_files, config.sample.prompts = "", {}, ()
  return config


def train_sharded(loop_module, workdir, **model):
  """One step of ``loop_module`` on a data 2 × FSDP 2 × tensor 2 mesh, checking that what
  divides is split: a layer with 1 KV head keeps its heads whole, the 'L' layer's
  (embed, embed) goes over fsdp once. Returns the run config."""
  config = driver_config(loop_module, **model)
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 2, 2, 2
  summary = driver.run(config, str(workdir))
  assert summary["step"] == 1 and np.isfinite(summary["train"]["loss"])
  recorded = json.load(open(workdir / "config.json"))["model_resolved"]
  assert (tuple(recorded["layer_kv_heads"]), tuple(recorded["layer_mlp_dims"])) == (
      model["layer_kv_heads"], model["layer_mlp_dims"])
  layers = summary["state"].params["layers"]
  spec = lambda kind, name, nth=0: [layer[name] for layer, c in zip(
      layers, model["pattern"]) if c == kind][nth].sharding.spec
  P = jax.sharding.PartitionSpec
  assert spec("L", "w") == P("fsdp", None)
  for nth, kv_heads in enumerate(model["layer_kv_heads"]):
    assert spec("*", "k", nth) == P("fsdp", "tensor" if kv_heads % 2 == 0 else None, None)
  assert spec("-", "up") == P("fsdp", "tensor")
  return config


def test_pretraining_runs_sharded_and_resumes(tmp_path, capsys):
  config = train_sharded(tiny_hybrid, tmp_path, pattern="*-L*-", layer_kv_heads=(1, 2),
                         layer_mlp_dims=(64, 32))
  config.train.steps = 2
  capsys.readouterr()
  resumed = driver.run(config, str(tmp_path))
  assert "resuming at step 1" in capsys.readouterr().out
  assert resumed["step"] == 2 and np.isfinite(resumed["train"]["loss"])
  with open(tmp_path / "metrics.jsonl") as f:
    assert [json.loads(line)["step"] for line in f] == [1, 2]


def test_sft_runs_sharded(tmp_path):
  train_sharded(sft_config, tmp_path, pattern="*--*L", layer_kv_heads=(4, 2),
                layer_mlp_dims=(32, 96))


@pytest.mark.parametrize("loop_module", [grpo_config, rlp_config], ids=["grpo", "rlp"])
def test_rl_loops_run_sharded(loop_module, tmp_path):
  """GRPO (rollouts through the caches) and RLP on the same heterogeneous layers."""
  train_sharded(loop_module, tmp_path, pattern="*-L*-", layer_kv_heads=(1, 2),
                layer_mlp_dims=(64, 32))


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="libtpu is not installed (pip install -e '.[tpu]')")
def test_heterogeneous_train_step_compiles_for_a_tpu_topology():
  """Splash attention per layer at its own KV heads (1 of them not split over tensor=2)
  and an 'L' layer, on v5e:2x2 as FSDP 2 × tensor 2 (tests/test_tpu_compile.py)."""
  config = driver_config(tiny_hybrid, pattern="*-L*-", layer_kv_heads=(1, 2),
                         layer_mlp_dims=(128, 256))
  config.model.attention_impl, config.model.attention_block = "flash", 128
  config.train.seq_len = 128
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 2, 2
  compiled, report = aot.compile_train_step(config, "v5e:2x2", report=lambda _: None)
  assert "splash" in compiled.as_text()
  assert report.mesh == {"data": 1, "fsdp": 2, "tensor": 2}
  assert report.params == lm.count_params(run_config.model_config(config.model))
  assert 0 < report.total_bytes < 0.05 * report.hbm_bytes
