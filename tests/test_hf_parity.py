"""Logit parity with Hugging Face transformers, and checkpoint round trips (model/hf.py).

Each family builds one tiny random HF model (torch, CPU, float32) per module, perturbs
the weights HF initialises to constants (norms, D, dt_bias, A_log, biases) so that
mapping mistakes show, saves it with ``save_pretrained`` and loads it with
``load_hf_checkpoint(..., dt_floor=transformers_dt_floor())``: NVIDIA's NemotronH (our
default) clamps dt to time_step_limit, as transformers >= 5.25 does; transformers 5.23-5.24
floor it at time_step_min. Which one the installed transformers computes is found by
running it, not read from its version.
"""

import copy
import dataclasses
import functools
import json
import os
import shutil
import tempfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy as safetensors_numpy
import torch
import transformers

from model import hf
from model import lm

VOCAB, BATCH, LENGTH = 256, 3, 24
LEFT_PADS = (0, 5, 13)
REL_TOL = 1e-4
_INIT = {"vocab_size": VOCAB, "hidden_size": 64, "initializer_range": 0.15}
_ATTENTION = {"num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 96}
_MAMBA = {"n_groups": 2, "conv_kernel": 4, "chunk_size": 8}

# name → (architecture, HF config kwargs).
FAMILIES = {
    # Llama-3 RoPE scaling (original context 64: some frequencies kept, some smoothed,
    # some divided) and tied embeddings.
    "llama_tied": ("LlamaForCausalLM", dict(
        **_INIT, **_ATTENTION, num_hidden_layers=2, tie_word_embeddings=True,
        rms_norm_eps=1e-5, rope_parameters={
            "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64})),
    "llama": ("LlamaForCausalLM", dict(
        **_INIT, **_ATTENTION, num_hidden_layers=2, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 500.0})),
    "qwen2": ("Qwen2ForCausalLM", dict(  # q/k/v biases
        **_INIT, **_ATTENTION, num_hidden_layers=2, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000.0})),
    "mamba2": ("Mamba2ForCausalLM", dict(
        **_INIT, **_MAMBA, num_hidden_layers=2, num_heads=8, head_dim=16, expand=2,
        state_size=16, time_step_limit=(0.02, 0.6), tie_word_embeddings=False)),
    "nemotron_h": ("NemotronHForCausalLM", dict(
        **_INIT, **_ATTENTION, **_MAMBA, head_dim=16,
        layers_block_type=["linear_attention", "mlp", "full_attention", "mlp",
                           "linear_attention", "mlp"],
        mamba_num_heads=8, mamba_head_dim=16, ssm_state_size=16, time_step_min=0.05,
        layer_norm_epsilon=1e-5)),
}

_forward = jax.jit(lm.forward, static_argnames=("cfg",))


@functools.cache
def transformers_dt_floor() -> str:
  """The ``dt_floor`` (one of hf.DT_FLOORS) that reproduces the installed transformers'
  NemotronH: a Mamba layer whose softplus(dt_bias) lies below time_step_min (and an
  attention layer, which transformers' masks need) runs in transformers and in ours
  under each floor; exactly one must match."""
  architecture = "NemotronHForCausalLM"
  config = transformers.AutoConfig.for_model(
      hf.ARCHITECTURES[architecture], architectures=[architecture],
      **dict(FAMILIES["nemotron_h"][1], layers_block_type=["linear_attention", "full_attention"]))
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  _perturb(model, torch.Generator().manual_seed(0))
  tokens, _, _ = _batches(0)
  reference = _hf_logits(model, architecture, tokens)
  with tempfile.TemporaryDirectory() as path:
    model.save_pretrained(path)
    loaded = {floor: hf.load_hf_checkpoint(path, dt_floor=floor) for floor in hf.DT_FLOORS}
  differences = {floor: _rel_diff(_ours(params, cfg, tokens), reference)
                 for floor, (params, cfg) in loaded.items()}
  matching = [floor for floor, diff in differences.items() if diff <= REL_TOL]
  assert len(matching) == 1, (
      f"transformers {transformers.__version__}'s NemotronH dt clamp matches none or both "
      f"of our floors (max|diff| / max|logit| per floor: {differences})")
  return matching[0]


def _perturb(model, gen):
  """Random values for the parameters HF initialises to constants."""
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim != 1:
        continue
      leaf = name.rsplit(".", 1)[-1]
      if leaf == "A_log":
        p.copy_(torch.log(torch.rand(p.shape, generator=gen) * 7.5 + 0.5))
      elif leaf == "dt_bias":
        p.copy_(torch.rand(p.shape, generator=gen) * 5.0 - 5.0)  # softplus ∈ (0.007, 0.7)
      elif leaf == "D":
        p.copy_(torch.randn(p.shape, generator=gen))
      elif leaf == "bias":
        p.copy_(0.3 * torch.randn(p.shape, generator=gen))
      else:  # RMSNorm / gated-norm weights
        p.copy_(torch.rand(p.shape, generator=gen) + 0.5)


def _batches(seed):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, VOCAB, (BATCH, LENGTH)).astype(np.int64)
  mask = np.ones((BATCH, LENGTH), np.int64)
  for row, pads in enumerate(LEFT_PADS):
    mask[row, :pads] = 0
  positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
  return tokens, mask, positions


def _hf_logits(model, architecture, tokens, mask=None, positions=None):
  kwargs = {}
  if mask is not None:
    kwargs["attention_mask"] = torch.tensor(mask)
    if architecture != "Mamba2ForCausalLM":  # Mamba2's forward takes no position ids
      kwargs["position_ids"] = torch.tensor(positions)
  with torch.no_grad():
    return model(torch.tensor(tokens), **kwargs).logits.float().numpy()


def _ours(params, cfg, tokens, mask=None, positions=None):
  if mask is None:
    mask = np.ones_like(tokens)
    positions = np.broadcast_to(np.arange(tokens.shape[1]), tokens.shape)
  logits, _ = _forward(params, jnp.asarray(tokens, jnp.int32), cfg=cfg,
                       positions=jnp.asarray(positions, jnp.int32),
                       segment_ids=jnp.asarray(mask, jnp.int32))
  chex.assert_shape(logits, tokens.shape + (cfg.vocab_size,))
  chex.assert_type(logits, jnp.float32)
  return np.asarray(logits)


def _rel_diff(ours, ref, where=None):
  if where is not None:
    ours, ref = ours[where.astype(bool)], ref[where.astype(bool)]
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


@dataclasses.dataclass
class Family:
  name: str
  architecture: str
  model: object
  path: str
  params: dict
  cfg: object
  tokens: np.ndarray
  mask: np.ndarray
  positions: np.ndarray
  hf_plain: np.ndarray
  hf_padded: np.ndarray


@pytest.fixture(scope="module")
def build(tmp_path_factory):
  """build(name) → Family, each built once per module."""
  cache = {}

  def get(name):
    if name not in cache:
      cache[name] = _build(name, str(tmp_path_factory.mktemp(name) / "hf"))
    return cache[name]
  return get


def _build(name, path):
  architecture, kwargs = FAMILIES[name]
  torch.set_default_dtype(torch.float32)
  seed = list(FAMILIES).index(name)
  torch.manual_seed(seed)
  config = transformers.AutoConfig.for_model(
      hf.ARCHITECTURES[architecture], architectures=[architecture], **kwargs)
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  _perturb(model, torch.Generator().manual_seed(seed))
  model.save_pretrained(path)
  params, cfg = hf.load_hf_checkpoint(path, dt_floor=transformers_dt_floor())
  tokens, mask, positions = _batches(seed)
  return Family(name, architecture, model, path, params, cfg, tokens, mask, positions,
                _hf_logits(model, architecture, tokens),
                _hf_logits(model, architecture, tokens, mask, positions))


@pytest.fixture(params=list(FAMILIES))
def family(request, build):
  return build(request.param)


def test_loaded_tree(family):
  specs = lm.abstract_params(family.cfg)
  chex.assert_trees_all_equal_shapes_and_dtypes(family.params, specs)
  for leaf in jax.tree.leaves(family.params):
    chex.assert_type(leaf, jnp.float32)
  assert ("lm_head" in family.params) == (not family.cfg.tie_embeddings)
  # A transformers config object reads the same as its config.json.
  assert hf.config_from_hf(family.model.config, dt_floor=transformers_dt_floor()) == family.cfg


def test_logits_match(family):
  ours = _ours(family.params, family.cfg, family.tokens)
  diff = _rel_diff(ours, family.hf_plain)
  print(f"{family.name}: max|diff| / max|logit| = {diff:.2e}")
  assert diff <= REL_TOL


def test_logits_match_left_padded(family):
  ours = _ours(family.params, family.cfg, family.tokens, family.mask, family.positions)
  diff = _rel_diff(ours, family.hf_padded, where=family.mask)
  print(f"{family.name} left-padded: max|diff| / max|logit| = {diff:.2e}")
  assert diff <= REL_TOL


def test_save_round_trip(family, tmp_path):
  out = hf.save_hf_checkpoint(family.params, family.cfg, str(tmp_path / "rt"),
                              architecture=family.architecture)
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  assert type(reloaded).__name__ == family.architecture
  original = family.model.state_dict()
  for key, value in reloaded.state_dict().items():
    assert torch.equal(value, original[key]), key
  logits = _hf_logits(reloaded, family.architecture, family.tokens)
  assert _rel_diff(logits, family.hf_plain) <= 1e-6
  params, cfg = hf.load_hf_checkpoint(out)
  # NemotronH's time_step_min is written as the clamp's lower end (older transformers
  # floor dt there), so dt_min, the range dt_bias is initialised from, may not survive.
  assert dataclasses.replace(cfg, dt_min=family.cfg.dt_min) == family.cfg
  chex.assert_trees_all_equal(params, family.params)


def test_save_llama_as_qwen2(build, tmp_path):
  """Bias-free attention saved as Qwen2 gets zero q/k/v biases: same logits."""
  family = build("llama")
  out = hf.save_hf_checkpoint(family.params, family.cfg, str(tmp_path / "q"),
                              architecture="Qwen2ForCausalLM")
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  assert type(reloaded).__name__ == "Qwen2ForCausalLM"
  logits = _hf_logits(reloaded, "Qwen2ForCausalLM", family.tokens)
  assert _rel_diff(logits, family.hf_plain) <= 1e-5


def test_save_tied_nemotron_h(build, tmp_path):
  """NemotronHForCausalLM never ties (_tied_weights_keys = {}): the head is stored."""
  family = build("nemotron_h")
  params = {k: v for k, v in family.params.items() if k != "lm_head"}
  cfg = family.cfg.replace(tie_embeddings=True)
  out = hf.save_hf_checkpoint(params, cfg, str(tmp_path / "tied"))
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["tie_word_embeddings"] is False
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  logits = _hf_logits(reloaded, family.architecture, family.tokens)
  assert _rel_diff(_ours(params, cfg, family.tokens), logits) <= REL_TOL


def test_nemotron_h_dt_clamp_follows_the_reference_by_default(build):
  """dt below time_step_min: NVIDIA's reference clamps it to time_step_limit = (0, inf)
  and so does our default; flooring it at time_step_min (transformers 5.23-5.24) changes
  these logits by more than 1%. The reference is transformers' model with its mixers'
  clamp set to time_step_limit (what >= 5.25 does already), whichever version runs."""
  family = build("nemotron_h")  # softplus(dt_bias) from 0.007, time_step_min = 0.05
  params, cfg = hf.load_hf_checkpoint(family.path)
  assert cfg.dt_limit == (0.0, float("inf"))
  ours = _ours(params, cfg, family.tokens)
  floored_params, floored_cfg = hf.load_hf_checkpoint(family.path, dt_floor="time_step_min")
  floored = _rel_diff(ours, _ours(floored_params, floored_cfg, family.tokens))
  print(f"reference vs a floor at time_step_min: max|diff| / max|logit| = {floored:.2e}")
  assert floored > 1e-2
  reference = copy.deepcopy(family.model)
  for layer in reference.model.layers:
    if hasattr(layer.mixer, "time_step_limit"):
      layer.mixer.time_step_limit = tuple(reference.config.time_step_limit)
  assert _rel_diff(ours, _hf_logits(reference, family.architecture, family.tokens)) <= REL_TOL


def test_save_writes_a_dt_clamp_transformers_reproduces(build, tmp_path):
  """Saved with the reference clamp (0, inf), transformers computes our function too."""
  family = build("nemotron_h")
  params, cfg = hf.load_hf_checkpoint(family.path)
  out = hf.save_hf_checkpoint(params, cfg, str(tmp_path / "ref"))
  with open(os.path.join(out, "config.json")) as f:
    saved = json.load(f)
  assert saved["time_step_min"] == 0.0 and saved["time_step_limit"][0] == 0.0
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  logits = _hf_logits(reloaded, family.architecture, family.tokens)
  assert _rel_diff(_ours(params, cfg, family.tokens), logits) <= REL_TOL


# Only the keys a tiny model needs; everything else takes transformers' defaults
# (Qwen2: 32 heads and 32 kv heads; NemotronH: head_dim 128, 8 kv heads, ...).
MINIMAL_CONFIGS = {
    "llama": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
              "vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 96,
              "num_hidden_layers": 2, "num_attention_heads": 4},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 96,
              "num_hidden_layers": 2},
    "mamba2": {"architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2",
               "vocab_size": VOCAB, "hidden_size": 64, "num_hidden_layers": 2,
               "num_heads": 8, "head_dim": 16},
    "nemotron_h": {"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
                   "vocab_size": VOCAB, "hidden_size": 64, "num_attention_heads": 8,
                   "intermediate_size": 96, "mamba_num_heads": 8, "mamba_head_dim": 16,
                   "layers_block_type": ["linear_attention", "mlp", "full_attention", "mlp"]},
}


@pytest.mark.parametrize("name", sorted(MINIMAL_CONFIGS))
def test_minimal_config_gets_transformers_defaults(name, tmp_path):
  minimal = MINIMAL_CONFIGS[name]
  path = tmp_path / "minimal"
  path.mkdir()
  (path / "config.json").write_text(json.dumps(minimal))
  torch.manual_seed(0)
  config = transformers.AutoConfig.from_pretrained(str(path))
  model = transformers.AutoModelForCausalLM.from_config(config).eval()
  _perturb(model, torch.Generator().manual_seed(0))
  model.save_pretrained(str(tmp_path / "full"))
  shutil.copy(tmp_path / "full" / "model.safetensors", path / "model.safetensors")
  params, cfg = hf.load_hf_checkpoint(str(path), dt_floor=transformers_dt_floor())
  assert cfg == hf.config_from_hf(model.config, dt_floor=transformers_dt_floor())
  tokens, _, _ = _batches(0)
  architecture = minimal["architectures"][0]
  assert _rel_diff(_ours(params, cfg, tokens), _hf_logits(model, architecture, tokens)
                   ) <= REL_TOL


@pytest.mark.parametrize("name, key, named", [
    ("llama", "hidden_size", "'hidden_size'"), ("llama", "vocab_size", "'vocab_size'"),
    ("qwen2", "intermediate_size", "'intermediate_size'"),
    ("qwen2", "num_hidden_layers", "'num_hidden_layers'"),
    ("mamba2", "num_hidden_layers", "'num_hidden_layers'"),
    ("nemotron_h", "layers_block_type", "'layers_block_type' or 'hybrid_override_pattern'"),
])
def test_a_config_json_without_a_key_that_sizes_the_model_is_named(name, key, named,
                                                                    tmp_path):
  """Not transformers' default (hidden_size 4096), found out as a wrong embedding shape."""
  (tmp_path / "config.json").write_text(
      json.dumps({k: v for k, v in MINIMAL_CONFIGS[name].items() if k != key}))
  architecture = MINIMAL_CONFIGS[name]["architectures"][0]
  with pytest.raises(ValueError) as error:
    hf.load_hf_checkpoint(str(tmp_path))
  assert str(error.value) == (
      f"{tmp_path / 'config.json'}: no {named}: a {architecture} config must set it (it "
      "sizes the model; transformers' default is a model of another size)")


def test_nemotron_h_4b_shaped_config_without_head_dim():
  """Nemotron-H-4B: hidden 3072, 32 heads of width 128 (not 3072 / 32 = 96)."""
  shaped = {"architectures": ["NemotronHForCausalLM"], "hidden_size": 3072,
            "num_attention_heads": 32, "num_key_value_heads": 8,
            "hybrid_override_pattern": "M-M*-"}
  cfg = hf.config_from_hf(shaped)
  reference = transformers.AutoConfig.for_model("nemotron_h", **shaped)
  assert (cfg.head_dim, cfg.n_heads, cfg.pattern) == (reference.head_dim, 32, "M-M*-") == (
      128, 32, "M-M*-")
  assert hf.config_from_hf(dict(shaped, attention_head_dim=128)).head_dim == 128  # NVIDIA's
  assert hf.config_from_hf(dict(shaped, attention_head_dim=64)).head_dim == 64
  with pytest.raises(ValueError, match="attention_head_dim=64 and head_dim=128"):
    hf.config_from_hf(dict(shaped, attention_head_dim=64, head_dim=128))
  with pytest.raises(ValueError, match="dt_floor='floor'"):
    hf.config_from_hf(shaped, dt_floor="floor")


# ------------------------------------------------------------------ file formats


def _copy(family, tmp_path):
  path = str(tmp_path / "copy")
  shutil.copytree(family.path, path)
  return path


def _read(path):
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  with safe_open(os.path.join(path, "model.safetensors"), framework="flax") as f:
    return {k: np.asarray(f.get_tensor(k)) for k in f.keys()}


def test_sharded_checkpoint(build, tmp_path):
  family = build("qwen2")
  path = str(tmp_path / "sharded")
  family.model.save_pretrained(path, max_shard_size="40KB")
  assert os.path.exists(os.path.join(path, "model.safetensors.index.json"))
  params, cfg = hf.load_hf_checkpoint(path)
  assert cfg == family.cfg
  chex.assert_trees_all_equal(params, family.params)


def test_nemotron_h_model_prefix(build, tmp_path):
  """Keys under transformers' in-memory prefix model. load like backbone. keys."""
  family = build("nemotron_h")
  path = _copy(family, tmp_path)
  renamed = {k.replace("backbone.", "model.", 1): v for k, v in _read(path).items()}
  safetensors_numpy.save_file(renamed, os.path.join(path, "model.safetensors"))
  params, _ = hf.load_hf_checkpoint(path)
  chex.assert_trees_all_equal(params, family.params)


@pytest.mark.parametrize("name", ["qwen2", "nemotron_h"])
def test_bfloat16_files(name, build, tmp_path):
  family = build(name)
  path = hf.save_hf_checkpoint(family.params, family.cfg, str(tmp_path / "bf16"),
                               architecture=family.architecture, dtype="bfloat16")
  rounded = jax.tree.map(lambda x: x.astype(jnp.bfloat16), family.params)
  params16, cfg16 = hf.load_hf_checkpoint(path, dtype=jnp.bfloat16)
  assert cfg16.param_dtype == "bfloat16"
  chex.assert_trees_all_equal(params16, rounded)
  params32, _ = hf.load_hf_checkpoint(path)
  chex.assert_trees_all_equal(params32, jax.tree.map(lambda x: x.astype(jnp.float32),
                                                     rounded))
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(path)
  embed = reloaded.get_input_embeddings().weight.detach()
  assert embed.dtype == torch.bfloat16
  np.testing.assert_array_equal(embed.float().numpy(),
                                np.asarray(params32["embed"], np.float32))


def test_checkpoint_errors(build, tmp_path):
  family = build("qwen2")
  path = _copy(family, tmp_path)
  tensors = _read(path)
  file = os.path.join(path, "model.safetensors")

  broken = dict(tensors)
  del broken["model.layers.1.mlp.up_proj.weight"]
  safetensors_numpy.save_file(broken, file)
  with pytest.raises(ValueError, match=r"missing \['model.layers.1.mlp.up_proj.weight'\]"):
    hf.load_hf_checkpoint(path)

  broken = dict(tensors, **{"model.layers.0.mlp.extra.weight": np.zeros(3, np.float32)})
  safetensors_numpy.save_file(broken, file)
  with pytest.raises(ValueError, match=r"unexpected.*mlp.extra.weight \(in model.safetensors"):
    hf.load_hf_checkpoint(path)

  broken = dict(tensors)
  broken["model.layers.0.self_attn.k_proj.bias"] = np.zeros(31, np.float32)
  safetensors_numpy.save_file(broken, file)
  with pytest.raises(ValueError, match=r"model.safetensors: model.layers.0.self_attn.k_proj"
                     r".bias has shape \(31,\), expected \(32,\)"):
    hf.load_hf_checkpoint(path)

  data = safetensors_numpy.save(tensors)
  with open(file, "wb") as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(ValueError, match=f"{file}: not a readable safetensors file"):
    hf.load_hf_checkpoint(path)

  os.remove(file)
  with pytest.raises(FileNotFoundError, match="safetensors"):
    hf.load_hf_checkpoint(path)

  config_path = os.path.join(path, "config.json")
  config = json.load(open(config_path))
  with open(config_path, "w") as f:
    f.write(json.dumps(config)[:-10])
  with pytest.raises(ValueError, match=f"{config_path}: invalid JSON"):
    hf.load_hf_checkpoint(path)
  del config["architectures"], config["model_type"]
  with open(config_path, "w") as f:
    json.dump(config, f)
  with pytest.raises(ValueError, match=f"{config_path}: .*architectures=None"):
    hf.load_hf_checkpoint(path)


# ------------------------------------------------------------------------ configs


def _config(name):
  architecture, kwargs = FAMILIES[name]
  config = transformers.AutoConfig.for_model(
      hf.ARCHITECTURES[architecture], architectures=[architecture], **kwargs)
  return json.loads(config.to_json_string())


def test_config_translation():
  cfg = hf.config_from_hf(_config("llama_tied"))
  assert cfg.pattern == "*-*-" and cfg.tie_embeddings and cfg.use_rope
  assert cfg.rope_llama3_scaling == (8.0, 1.0, 4.0, 64)
  assert cfg.norm_eps == 1e-5 and cfg.head_dim == 16 and cfg.n_kv_heads == 2
  cfg = hf.config_from_hf(_config("qwen2"))
  assert cfg.qkv_bias and cfg.rope_theta == 1000.0 and cfg.rope_llama3_scaling is None
  cfg = hf.config_from_hf(_config("mamba2"))
  assert (cfg.pattern, cfg.ssm_groups, cfg.ssm_heads, cfg.dt_limit) == (
      "MM", 2, 8, (0.02, 0.6))
  cfg = hf.config_from_hf(_config("nemotron_h"))
  assert cfg.pattern == "M-*-M-" and not cfg.use_rope and cfg.mlp_activation == "relu2"
  assert cfg.dt_limit == (0.0, float("inf"))   # NVIDIA's NemotronH: time_step_limit
  cfg = hf.config_from_hf(_config("nemotron_h"), dt_floor="time_step_min")
  assert cfg.dt_limit == (0.05, float("inf"))  # transformers 5.23-5.24: time_step_min
  legacy = dict(_config("nemotron_h"), hybrid_override_pattern="M*-")
  del legacy["layers_block_type"]
  assert hf.config_from_hf(legacy).pattern == "M*-"
  legacy_llama = dict(_config("llama"), rope_theta=123.0,
                      rope_scaling={"type": "llama3", "factor": 2.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 2.0,
                                    "original_max_position_embeddings": 16})
  del legacy_llama["rope_parameters"]
  cfg = hf.config_from_hf(legacy_llama)
  assert cfg.rope_theta == 123.0 and cfg.rope_llama3_scaling == (2.0, 1.0, 2.0, 16)


@pytest.mark.parametrize("name, change, field", [
    ("nemotron_h", {"layers_block_type": ["linear_attention", "moe"]}, "layers_block_type"),
    ("nemotron_h", {"mlp_hidden_act": "silu"}, "mlp_hidden_act"),
    ("nemotron_h", {"sliding_window": 128}, "sliding_window"),
    ("llama", {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}},
     "rope_parameters.rope_type"),
    ("llama", {"attention_bias": True}, "attention_bias"),
    ("llama", {"hidden_act": "gelu"}, "hidden_act"),
    ("qwen2", {"use_sliding_window": True}, "use_sliding_window"),
    ("mamba2", {"use_bias": True}, "use_bias"),
    ("mamba2", {"architectures": ["MambaForCausalLM"], "model_type": "mamba"},
     "architectures"),
])
def test_unsupported_config_names_the_field(name, change, field):
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    hf.config_from_hf({**_config(name), **change})


def test_save_rejects_unrepresentable():
  cfg = hf.config_from_hf(_config("nemotron_h"))
  params = lm.init(jax.random.PRNGKey(0), cfg)
  with pytest.raises(ValueError, match="pattern"):
    hf.save_hf_checkpoint(params, cfg, "/nonexistent", architecture="LlamaForCausalLM")
  with pytest.raises(ValueError, match="use_rope"):
    hf.save_hf_checkpoint(params, cfg.replace(use_rope=True), "/nonexistent")
  with pytest.raises(ValueError, match=r"params\['final_norm'\] has shape \(63,\)"):
    hf.save_hf_checkpoint(dict(params, final_norm=params["final_norm"][:63]), cfg,
                          "/nonexistent")
  del params["lm_head"]
  with pytest.raises(ValueError, match=r"missing \[\"params\['lm_head'\]\"\]"):
    hf.save_hf_checkpoint(params, cfg, "/nonexistent")
