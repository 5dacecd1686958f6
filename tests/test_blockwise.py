"""Local and pooling-augmented blockwise attention (model/blockwise.py, arXiv 2209.10052)
against a float64 reference written from the definition, its decode cache against the
full forward, and its bad inputs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import blockwise
from model import config as config_lib
from model import generate as generate_lib
from model import layers
from model import lm


def reference(q, k, v, segment_ids, cfg):
  """The definition, query by query: softmax over the query's block (causal, same
  segment) plus softmax over the pooled windows that end in completed blocks."""
  b, l, kh, g, e = q.shape
  B, K, S = cfg.local_block, cfg.pool_kernel, cfg.pool_stride
  i = jnp.arange(l)
  local = ((i[None, :] <= i[:, None]) & (i[None, :] // B == i[:, None] // B))[None]
  local = local & (segment_ids[:, :, None] == segment_ids[:, None, :])          # b l s

  def attend(keys, values, visible):                     # keys (b k s e), visible (b l s)
    scores = jnp.einsum("blkge,bkse->blkgs", q, keys) / np.sqrt(e)
    scores = jnp.where(visible[:, :, None, None, :], scores, -jnp.inf)
    probs = jax.nn.softmax(scores, axis=-1)
    probs = jnp.where(visible.any(-1)[:, :, None, None, None], probs, 0.0)
    return jnp.einsum("blkgs,bkse->blkge", probs, values)

  out = attend(k, v, local)
  if cfg.attention != "pooled":
    return out
  starts = list(range(0, l - K + 1, S))
  if not starts:
    return out
  pooled_k = jnp.stack([k[:, :, s:s + K].mean(2) for s in starts], axis=2)
  pooled_v = jnp.stack([v[:, :, s:s + K].mean(2) for s in starts], axis=2)
  ends = jnp.array(starts) + K
  window_seg = jnp.stack([jnp.where(segment_ids[:, s] == segment_ids[:, s + K - 1],
                                    segment_ids[:, s], -7) for s in starts], axis=1)
  pooled = ((ends[None, None, :] <= (i // B * B)[None, :, None])
            & (window_seg[:, None, :] == segment_ids[:, :, None]))
  return out + attend(pooled_k, pooled_v, pooled)


CASES = [  # (attention_impl, length, local_block, pool_kernel, pool_stride, packed)
    ("einsum", 29, 8, 3, 2, False),   # the block does not divide the length
    ("chunked", 32, 8, 5, 3, True),   # two packed documents, windows across them, padding
    ("chunked", 12, 16, 4, 4, False), # one block: no window is seen, the branch adds 0
    ("einsum", 40, 8, 8, 8, False),   # windows = blocks
]


def _inputs(length, packed, seed=0):
  rng = np.random.default_rng(seed)
  q = jnp.asarray(rng.normal(size=(2, length, 2, 2, 8)))
  k, v = (jnp.asarray(rng.normal(size=(2, 2, length, 8))) for _ in range(2))
  segments = np.ones((2, length), np.int32)
  if packed:
    segments[0, length // 3:] = 2
    segments[1, -3:] = 0                                  # padding at the end
  return q, k, v, jnp.asarray(segments)


@pytest.mark.parametrize("impl,length,block,kernel,stride,packed", CASES)
def test_sequence_attention_matches_reference(impl, length, block, kernel, stride, packed):
  with jax.enable_x64(True):
    cfg = config_lib.tiny_transformer(attention="pooled", local_block=block,
                                      pool_kernel=kernel, pool_stride=stride,
                                      attention_impl=impl, attention_block=4,
                                      dtype="float64")
    q, k, v, seg = _inputs(length, packed)
    ours = lambda q, k, v: blockwise.sequence_attention(q, k, v, seg, cfg,
                                                        layers.causal_core(cfg))
    want = lambda q, k, v: reference(q, k, v, seg, cfg)
    chex.assert_trees_all_close(ours(q, k, v), want(q, k, v), atol=1e-10)
    loss = lambda f: jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(f(*a))), argnums=(0, 1, 2)))
    chex.assert_trees_all_close(loss(ours)(q, k, v), loss(want)(q, k, v), atol=1e-9)
    local_cfg = cfg.replace(attention="local")
    chex.assert_trees_all_close(
        blockwise.sequence_attention(q, k, v, seg, local_cfg, layers.causal_core(cfg)),
        reference(q, k, v, seg, local_cfg), atol=1e-10)


def test_pooled_branch_sees_only_completed_blocks():
  """Changing a key in the query's own block moves the pooled branch of no query in
  that block, and changing one in an earlier block moves it."""
  cfg = config_lib.tiny_transformer(attention="pooled", local_block=8, pool_kernel=3,
                                    pool_stride=2)
  q, k, v, seg = (a.astype(jnp.float32) if a.dtype != jnp.int32 else a
                  for a in _inputs(24, False))
  base = blockwise.pooled_attention(q, k, v, seg, cfg)
  np.testing.assert_array_equal(base[:, :8], 0.0)           # first block: no window
  moved_here = blockwise.pooled_attention(q, k, v.at[:, :, 12].add(5.0), seg, cfg)
  np.testing.assert_array_equal(moved_here[:, 8:16], base[:, 8:16])
  assert np.abs(moved_here[:, 16:] - base[:, 16:]).max() > 1e-3
  moved_before = blockwise.pooled_attention(q, k, v.at[:, :, 2].add(5.0), seg, cfg)
  assert np.abs(moved_before[:, 8:16] - base[:, 8:16]).max() > 1e-3


@pytest.fixture(scope="module")
def model():
  cfg = config_lib.tiny(vocab_size=64, pattern="M*-*-", layer_attention=("local", "pooled"),
                        local_block=8, pool_kernel=3, pool_stride=2)
  return cfg, lm.init(jax.random.PRNGKey(0), cfg)


def test_decode_cache_equals_full_forward(model):
  cfg, params = model
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 27), 0, cfg.vocab_size)
  forward = jax.jit(lm.forward, static_argnames="cfg")
  full, _ = forward(params, tokens, cfg=cfg)
  assert np.isfinite(full).all()
  full_attention, _ = forward(params, tokens, cfg=cfg.replace(layer_attention=()))
  assert np.abs(full[:, 8:] - full_attention[:, 8:]).max() > 1e-4   # not full attention
  cache = lm.init_cache(cfg, 2, 32)
  prefill, cache = forward(params, tokens[:, :11], cfg=cfg, cache=cache)
  steps = [prefill]
  for i in range(11, 27):
    logits, cache = forward(params, tokens[:, i:i + 1], cfg=cfg, cache=cache)
    steps.append(logits)
  chex.assert_trees_all_close(jnp.concatenate(steps, axis=1), full, atol=2e-5)


def test_left_padded_prompt_decodes_as_alone(model):
  """The cache path follows positions, not slots: a prompt left-padded by 5 slots gives
  the logits of the same prompt at slot 0."""
  cfg, params = model
  prompt = jax.random.randint(jax.random.PRNGKey(2), (1, 20), 1, cfg.vocab_size)
  alone, _ = lm.forward(params, prompt, cfg)
  padded = jnp.concatenate([jnp.zeros((1, 5), jnp.int32), prompt], axis=1)
  mask = (jnp.arange(25) >= 5)[None].astype(jnp.int32)
  logits, _ = jax.jit(lm.forward, static_argnames="cfg")(
      params, padded, cfg=cfg, positions=generate_lib.prompt_positions(mask),
      segment_ids=mask, cache=lm.init_cache(cfg, 1, 32))
  chex.assert_trees_all_close(logits[:, 5:], alone, atol=2e-5)


def test_too_long_is_a_clear_error(model):
  cfg, params = model
  cfg = cfg.replace(max_seq_len=16)
  with pytest.raises(ValueError, match=r"tokens \(1, 17\): 17 positions exceed model.max_seq_len=16"):
    lm.forward(params, jnp.zeros((1, 17), jnp.int32), cfg)
  with pytest.raises(ValueError, match="a cache of 20 slots: 20 positions exceed"):
    lm.init_cache(cfg, 1, 20)


@pytest.mark.parametrize("changes,field", [
    (dict(layer_attention=("pooled",)), "layer_attention"),
    (dict(attention="sliding"), "attention"),
    (dict(local_block=4, pool_kernel=6), "pool_kernel"),
    (dict(pool_stride=0), "pool_stride"),
    (dict(max_seq_len=-1), "max_seq_len"),
])
def test_bad_config_names_the_field(changes, field):
  with pytest.raises(ValueError, match=f"ModelConfig.{field}="):
    config_lib.tiny_transformer(**changes)


def test_empty_rows_give_zero_not_nan():
  """Padding queries, queries of the first block and a row of one segment per token: the
  pooled branch of a query that sees no window is 0 and its gradient finite."""
  cfg = config_lib.tiny_transformer(attention="pooled", local_block=4, pool_kernel=2,
                                    pool_stride=2, attention_block=4)
  q, k, v, _ = (a.astype(jnp.float32) if a.dtype != jnp.int32 else a
                for a in _inputs(16, False))
  seg = jnp.broadcast_to(jnp.arange(1, 17, dtype=jnp.int32), (2, 16))   # no shared window
  out = blockwise.pooled_attention(q, k, v, seg, cfg)
  np.testing.assert_array_equal(out, 0.0)
  grads = jax.grad(lambda q: jnp.sum(blockwise.sequence_attention(
      q, k, v, seg, cfg, layers.causal_core(cfg))))(q)
  assert np.isfinite(grads).all()


def test_tool_decoding_refuses_blockwise_layers(model):
  cfg, params = model
  with pytest.raises(ValueError, match="tool decoding pauses rows"):
    generate_lib.start_tool_decoding(
        params, jnp.ones((1, 4), jnp.int32), jnp.ones((1, 4), jnp.int32),
        jnp.ones((1,), jnp.int32), model_cfg=cfg,
        sampling=generate_lib.SamplingConfig(max_new_tokens=4), max_steps=8,
        forced_slots=2)


def test_pooled_blockwise_claim_config_checks():
  """Both arms adapt the same base on the same data; only the attention spans differ."""
  from configs.claims import pooled_blockwise
  from train import claims
  config = pooled_blockwise.get_config()
  claims.check(config)
  pooled, local = (config.stages[arm].run for arm in ("pooled", "local"))
  assert pooled.model.layer_attention == ("local", "pooled", "pooled")
  assert local.model.layer_attention == ("local", "local", "local")
  assert pooled.data.to_dict() == local.data.to_dict()
  assert pooled.model.vocab_size == 1024 + pooled.data.span_corruption.num_sentinels


@pytest.mark.slow
def test_fast_pooled_blockwise_claim(fast_claim):
  """The fast claim end to end (~3 minutes): the passkey dataset built, the base
  pretrained with full attention, both arms adapted on equal tokens with span
  corruption; the sign is not asserted."""
  workdir, summary = fast_claim("pooled_blockwise")
  pooled, local = summary["arms"]["pooled"], summary["arms"]["local"]
  assert summary["seeds"] == [0] and pooled["tokens_seen"] == local["tokens_seen"]
  for figures in (pooled, local):
    assert {"pass@1/far", "pass@1/near"} <= set(figures)
  assert summary["baselines"]["chance"] == 0.1
  assert (workdir / "pooled_blockwise.png").exists()
