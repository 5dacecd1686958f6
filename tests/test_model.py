"""Model behaviour: decode == forward, packing, gradients, config validation, SSD refs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import config as mcfg
from model import layers
from model import lm
from model import params as P
from model import ssd

FAMILIES = {
    "hybrid": mcfg.tiny(),
    "transformer": mcfg.tiny_transformer(qkv_bias=True, tie_embeddings=True),
    "mamba": mcfg.tiny_mamba(ssm_groups=2),
}
SEQ = 21


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
  cfg = FAMILIES[request.param]
  params = lm.init(jax.random.key(0), cfg)
  tokens = jax.random.randint(jax.random.key(1), (2, SEQ), 0, cfg.vocab_size)
  logits, cache = jax.jit(lambda p, t: lm.forward(p, t, cfg))(params, tokens)
  return cfg, params, tokens, logits, cache


def test_forward_shapes(family):
  cfg, _, tokens, logits, cache = family
  chex.assert_shape(logits, tokens.shape + (cfg.vocab_size,))
  chex.assert_type(logits, jnp.float32)
  assert cache is None


def test_decode_matches_full_forward(family):
  """Prefill a prompt, then one token at a time: the same logits as one forward."""
  cfg, params, tokens, logits, _ = family
  prompt = 9
  step = jax.jit(lambda p, t, c: lm.forward(p, t, cfg, cache=c))
  cache = lm.init_cache(cfg, tokens.shape[0], 32)
  out, cache = step(params, tokens[:, :prompt], cache)
  pieces = [out]
  for i in range(prompt, SEQ):
    out, cache = step(params, tokens[:, i:i + 1], cache)
    pieces.append(out)
  assert int(cache["index"]) == SEQ
  np.testing.assert_allclose(jnp.concatenate(pieces, 1), logits, atol=2e-5, rtol=0)


def test_packed_equals_separate_documents(family):
  cfg, params, tokens, _, _ = family
  split = 8
  segment_ids = jnp.array([[1] * split + [2] * (SEQ - split)] * 2)
  positions = jnp.array([list(range(split)) + list(range(SEQ - split))] * 2)
  packed, _ = lm.forward(params, tokens, cfg, positions=positions, segment_ids=segment_ids)
  first, _ = lm.forward(params, tokens[:, :split], cfg)
  second, _ = lm.forward(params, tokens[:, split:], cfg)
  np.testing.assert_allclose(packed, jnp.concatenate([first, second], 1), atol=2e-5)


def test_left_padding_matches_unpadded(family):
  cfg, params, tokens, logits, _ = family
  pad = 5
  padded = jnp.concatenate([jnp.zeros((2, pad), tokens.dtype), tokens], axis=1)
  mask = jnp.concatenate([jnp.zeros((2, pad), jnp.int32), jnp.ones_like(tokens)], axis=1)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
  out, _ = lm.forward(params, padded, cfg, positions=positions, segment_ids=mask)
  np.testing.assert_allclose(out[:, pad:], logits, atol=2e-5)


def test_gradients_finite_and_nonzero(family):
  cfg, params, tokens, _, _ = family

  def loss(p):
    logits, _ = lm.forward(p, tokens[:, :-1], cfg)
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1).mean()

  grads = jax.jit(jax.grad(loss))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    name = jax.tree_util.keystr(path)
    assert bool(jnp.all(jnp.isfinite(g))), name
    assert float(jnp.max(jnp.abs(g))) > 0, name


def test_logical_axes_cover_every_parameter(family):
  cfg, params, _, _, _ = family
  axes = lm.logical_axes(cfg)
  shapes = jax.tree.map(lambda a: a.shape, params)
  flat_axes = jax.tree.leaves(axes)
  flat_shapes = jax.tree.leaves(shapes, is_leaf=lambda x: isinstance(x, tuple))
  assert len(flat_axes) == len(flat_shapes)
  for spec, shape in zip(flat_axes, flat_shapes):
    assert len(spec) == len(shape)
  assert sum(int(np.prod(s)) for s in flat_shapes) == lm.count_params(cfg)


def test_bf16_compute_is_close_to_fp32():
  cfg = FAMILIES["hybrid"]
  params = lm.init(jax.random.key(0), cfg)
  tokens = jax.random.randint(jax.random.key(1), (2, SEQ), 0, cfg.vocab_size)
  ref, _ = lm.forward(params, tokens, cfg)
  low, _ = lm.forward(params, tokens, cfg.replace(dtype="bfloat16"))
  chex.assert_type(low, jnp.float32)
  np.testing.assert_allclose(low, ref, atol=0.05 * float(jnp.abs(ref).max()))


@pytest.mark.parametrize("changes, field", [
    ({"pattern": "M*x"}, "pattern"),
    ({"pattern": ""}, "pattern"),
    ({"n_heads": 6, "n_kv_heads": 4}, "n_kv_heads"),
    ({"ssm_heads": 6, "ssm_groups": 4}, "ssm_groups"),
    ({"head_dim": 15}, "head_dim"),
    ({"d_model": 0}, "d_model"),
    ({"mlp_activation": "gelu"}, "mlp_activation"),
    ({"ssm_impl": "cuda"}, "ssm_impl"),
    ({"dtype": "int8"}, "dtype"),
])
def test_invalid_config_names_field(changes, field):
  with pytest.raises(ValueError, match=rf"ModelConfig\.{field}="):
    mcfg.tiny(**changes)


def test_published_shapes():
  assert mcfg.nemotron_h_8b().n_layers == 52
  assert mcfg.nemotron_h_8b().pattern.count("*") == 4
  assert 7.5e9 < lm.count_params(mcfg.nemotron_h_8b()) < 8.5e9
  assert 3.5e9 < lm.count_params(mcfg.nemotron_h_4b()) < 4.5e9
  assert 1.1e9 < lm.count_params(mcfg.llama_1b()) < 1.4e9


@pytest.mark.parametrize("length, chunk, groups", [(32, 8, 1), (37, 8, 2), (5, 16, 2)])
def test_ssd_reference_equals_naive_recurrence_float64(length, chunk, groups):
  rng = np.random.default_rng(length)
  b, h, p, n = 2, 4, 3, 5
  with jax.enable_x64(True):
    x = jnp.asarray(rng.standard_normal((b, length, h, p)))
    dt = jnp.asarray(rng.uniform(0.01, 0.5, (b, length, h)))
    A = -jnp.asarray(rng.uniform(0.5, 4.0, (h,)))
    B = jnp.asarray(rng.standard_normal((b, length, groups, n)))
    C = jnp.asarray(rng.standard_normal((b, length, groups, n)))
    D = jnp.asarray(rng.standard_normal((h,)))
    state0 = jnp.asarray(rng.standard_normal((b, h, p, n)))
    segments = jnp.asarray(np.sort(rng.integers(1, 4, (b, length)), axis=1))
    for kwargs in ({}, {"initial_state": state0, "segment_ids": segments}):
      y_naive, s_naive = ssd.ssd_naive(x, dt, A, B, C, D, **kwargs)
      y_ref, s_ref = ssd.ssd_reference(x, dt, A, B, C, D, chunk_size=chunk, **kwargs)
      chex.assert_type(y_ref, jnp.float64)
      np.testing.assert_allclose(y_ref, y_naive, atol=1e-10)
      np.testing.assert_allclose(s_ref, s_naive, atol=1e-10)


def test_ssd_decode_step_continues_the_scan():
  rng = np.random.default_rng(0)
  b, l, h, p, g, n = 2, 6, 4, 3, 2, 5
  x = jnp.asarray(rng.standard_normal((b, l, h, p)), jnp.float32)
  dt = jnp.asarray(rng.uniform(0.01, 0.5, (b, l, h)), jnp.float32)
  A = -jnp.asarray(rng.uniform(0.5, 4.0, (h,)), jnp.float32)
  B = jnp.asarray(rng.standard_normal((b, l, g, n)), jnp.float32)
  C = jnp.asarray(rng.standard_normal((b, l, g, n)), jnp.float32)
  y_full, s_full = ssd.ssd_naive(x, dt, A, B, C)
  state = jnp.zeros((b, h, p, n), jnp.float32)
  for t in range(l):
    y_t, state = ssd.ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t])
    np.testing.assert_allclose(y_t, y_full[:, t], atol=1e-5)
  np.testing.assert_allclose(state, s_full, atol=1e-5)


def test_attention_and_its_gradients_equal_naive_float64_attention():
  """The heads-first attention core with its closed-form backward, in fp32, against a
  per-head loop of plain softmax(q·kᵀ)·v in float64 differentiated by JAX: packed
  segments, GQA, and the dense projections around it."""
  cfg = mcfg.tiny_transformer(qkv_bias=True)
  b, l = 2, 11
  p32 = P.initialize(layers.attention_specs(cfg), jax.random.key(3), jnp.float32)
  p32 = jax.tree.map(lambda w: w + 0.05 * jax.random.normal(jax.random.key(4), w.shape), p32)
  x32 = jax.random.normal(jax.random.key(5), (b, l, cfg.d_model))
  segments = jnp.asarray([[1] * 4 + [2] * 7, [1] * 11], jnp.int32)
  positions = jnp.asarray([list(range(4)) + list(range(7)), list(range(11))], jnp.int32)
  cotangent = jax.random.normal(jax.random.key(6), (b, l, cfg.d_model))

  def ours(p, x):
    out, _ = layers.attention(p, x, cfg, positions=positions, segment_ids=segments)
    return jnp.sum(out * cotangent)

  def naive(p, x):
    q = jnp.einsum("bld,dhe->blhe", x, p["q"]) + p["q_bias"][None, None]
    k = jnp.einsum("bld,dke->blke", x, p["k"]) + p["k_bias"][None, None]
    v = jnp.einsum("bld,dke->blke", x, p["v"]) + p["v_bias"][None, None]
    inv_freq = layers.rope_inverse_frequencies(cfg).astype(x.dtype)
    q, k = layers.apply_rope(q, positions, inv_freq), layers.apply_rope(k, positions, inv_freq)
    visible = ((jnp.arange(l)[None, :, None] >= jnp.arange(l)[None, None, :])
               & (segments[:, :, None] == segments[:, None, :]))
    heads = []
    for h in range(cfg.n_heads):
      kv = h // (cfg.n_heads // cfg.n_kv_heads)
      scores = jnp.einsum("ble,bse->bls", q[:, :, h], k[:, :, kv]) / np.sqrt(cfg.head_dim)
      probs = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
      heads.append(jnp.einsum("bls,bse->ble", probs, v[:, :, kv]))
    out = jnp.einsum("blhe,hed->bld", jnp.stack(heads, axis=2), p["o"])
    return jnp.sum(out * cotangent)

  value, grads = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))(p32, x32)
  with jax.enable_x64(True):
    p64, x64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (p32, x32))
    want_value, want_grads = jax.jit(jax.value_and_grad(naive, argnums=(0, 1)))(p64, x64)
    chex.assert_type(want_value, jnp.float64)
  np.testing.assert_allclose(value, want_value, rtol=1e-5)
  scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(want_grads))
  for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(grads),
                               jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(got, want, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path))
