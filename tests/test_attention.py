"""The attention cores of model/attention.py against the einsum reference.

Tolerances (max abs error, inputs ~N(0, 1)): float64 forward and gradients 1e-12 (seen
~1e-15); float32 kernels 1e-5 forward and 1e-4 gradients (seen ~1e-6 and ~1e-5); the
float32 model, loss 1e-5 and gradients 1e-5 + 1e-4 relative.
"""

import chex
import jax
import jax.numpy as jnp
import pytest

from model import attention, lm
from model import config as mcfg


def _inputs(seed, *, b=2, l=45, k=2, g=3, e=8, dtype=jnp.float64):
  ks = jax.random.split(jax.random.PRNGKey(seed), 4)
  q = jax.random.normal(ks[0], (b, l, k, g, e), dtype)
  keys = jax.random.normal(ks[1], (b, k, l, e), dtype)    # heads first, as the cache
  values = jax.random.normal(ks[2], (b, k, l, e), dtype)
  # Packed rows: segments start anywhere; row 1 ends in padding (segment 0).
  segments = jnp.cumsum(jax.random.bernoulli(ks[3], 0.1, (b, l)), axis=1, dtype=jnp.int32) + 1
  segments = segments.at[1, -7:].set(0)
  return q, keys, values, segments


def _reference(q, k, v, segments):
  slots = jnp.arange(q.shape[1])
  return attention.einsum_attention(q, k, v, attention.visibility(slots, slots, segments,
                                                                  segments))


@pytest.mark.parametrize("block", [8, 16, 64])  # ragged, ragged, one block past the end
def test_chunked_matches_einsum_float64(block):
  with jax.enable_x64(True):
    q, k, v, segments = _inputs(block)
    chunked = lambda q, k, v: attention.chunked_attention(q, k, v, segments, block=block)
    reference = lambda q, k, v: _reference(q, k, v, segments)
    out = chunked(q, k, v)
    chex.assert_shape(out, q.shape)
    chex.assert_trees_all_close(out, reference(q, k, v), atol=1e-12, rtol=0)
    weights = jax.random.normal(jax.random.PRNGKey(1), q.shape, jnp.float64)
    loss = lambda fn: lambda *a: jnp.sum(fn(*a) * weights)
    grads = jax.grad(loss(chunked), argnums=(0, 1, 2))(q, k, v)
    grads_ref = jax.grad(loss(reference), argnums=(0, 1, 2))(q, k, v)
  chex.assert_trees_all_close(grads, grads_ref, atol=1e-12, rtol=0)


def _assert_matches_reference(core, q, k, v, segments, *, atol, grad_atol):
  out = core(q, k, v, segments)
  chex.assert_shape(out, q.shape)
  chex.assert_trees_all_close(out, _reference(q, k, v, segments), atol=atol, rtol=0)
  weights = jax.random.normal(jax.random.PRNGKey(1), q.shape, q.dtype)
  loss = lambda fn: lambda *a: jnp.sum(fn(*a, segments) * weights)
  grads = jax.jit(jax.grad(loss(core), argnums=(0, 1, 2)))(q, k, v)
  grads_ref = jax.jit(jax.grad(loss(_reference), argnums=(0, 1, 2)))(q, k, v)
  chex.assert_trees_all_close(grads, grads_ref, atol=grad_atol, rtol=0)


def test_splash_kernel_matches_einsum():
  """The TPU splash attention kernel (Pallas interpret mode) with packed segments and
  GQA: forward and the kernel's own backward, over two 128-blocks of queries and keys
  with a ragged end (200 = 128 + 72 and padding)."""
  q, k, v, segments = _inputs(3, l=200, e=16, dtype=jnp.float32)
  splash = lambda q, k, v, s: attention.splash_attention(q, k, v, s, block=128,
                                                         interpret=True)
  _assert_matches_reference(splash, q, k, v, segments, atol=1e-5, grad_atol=1e-4)
  with pytest.raises(ValueError, match="attention_block=96 must be a multiple of 128"):
    attention.splash_attention(q, k, v, segments, block=96)


def test_cudnn_call_matches_einsum():
  """The GPU path's call of ``jax.nn.dot_product_attention`` (layouts, GQA head order,
  causal + segment mask), run with its XLA implementation: cuDNN itself needs a GPU."""
  q, k, v, segments = _inputs(4, dtype=jnp.float32)
  xla = lambda q, k, v, s: attention.cudnn_attention(q, k, v, s, implementation="xla")
  _assert_matches_reference(xla, q, k, v, segments, atol=1e-5, grad_atol=1e-4)
  # Head sizes cuDNN's fused kernel does not take run the chunked kernel on CUDA.
  assert [attention.cudnn_head_dim(e) for e in (64, 128, 80, 36, 256)] == [
      True, True, True, False, False]


@pytest.mark.parametrize("impl", ["chunked", "flash"])  # 'flash' is 'chunked' on CPU
def test_model_with_fused_attention_matches_einsum(impl):
  """A tiny transformer's loss and every gradient, with packed segments."""
  cfg = mcfg.tiny_transformer(attention_block={"chunked": 16, "flash": 128}[impl])
  params = lm.init(jax.random.key(0), cfg)
  tokens = jax.random.randint(jax.random.key(1), (2, 40), 0, cfg.vocab_size)
  segment_ids = jnp.array([[1] * 11 + [2] * 29, [1] * 33 + [0] * 7])

  def loss(params, cfg):
    logits, _ = lm.forward(params, tokens, cfg, segment_ids=segment_ids)
    log_probs = jax.nn.log_softmax(logits[:, :-1])
    return -jnp.mean(jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1))

  value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  loss_chunked, grads_chunked = value_and_grad(params, cfg.replace(attention_impl=impl))
  loss_einsum, grads_einsum = value_and_grad(params, cfg)
  chex.assert_trees_all_close(loss_chunked, loss_einsum, atol=1e-5, rtol=0)
  chex.assert_trees_all_close(grads_chunked, grads_einsum, atol=1e-5, rtol=1e-4)
  with pytest.raises(ValueError, match="attention_impl"):
    mcfg.tiny(attention_impl="flash3")
  with pytest.raises(ValueError, match="attention_block"):
    mcfg.tiny(attention_impl="flash", attention_block=64)


def test_flash_on_a_mesh_matches_reference():
  """attention_impl='flash' under the user's ``jax.set_mesh`` on the 8-device CPU mesh
  (it shard_maps itself: rows over data x fsdp, kv heads over tensor; the CPU kernel is
  chunked_attention): forward and gradients equal the einsum reference on one device."""
  assert jax.device_count() == 8
  mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 3)
  q, k, v, segments = _inputs(5, b=4, l=40, dtype=jnp.float32)
  flash = lambda q, k, v, s: attention.flash_attention(q, k, v, s, block=128)
  with jax.set_mesh(mesh):
    text = jax.jit(flash).lower(q, k, v, segments).as_text()
    assert "sdy.manual_computation" in text or "shard_map" in text
    _assert_matches_reference(flash, q, k, v, segments, atol=1e-5, grad_atol=1e-4)


def test_single_query_decode_path_matches_the_last_row_float64():
  """One query per row (a decode step) takes ``_single_query_attention``: it must equal
  the last query row of the full attention, including a row whose tail is padding."""
  with jax.enable_x64(True):
    q, k, v, segments = _inputs(7)
    full = _reference(q, k, v, segments)
    slots = jnp.arange(q.shape[1])
    visible = attention.visibility(slots[-1:], slots, segments[:, -1:], segments)
    single = attention.einsum_attention(q[:, -1:], k, v, visible)
  chex.assert_shape(single, q[:, -1:].shape)
  chex.assert_trees_all_close(single[0], full[0, -1:], atol=1e-12, rtol=0)
  chex.assert_trees_all_close(single[1], full[1, -1:], atol=1e-12, rtol=0)
