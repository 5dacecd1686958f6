"""Pallas SSD kernels (model/kernels) against the references in model/ssd.py.

Both lowerings run in Pallas interpret mode on CPU: backend='gpu' (the Triton kernel,
interpret=True) and backend='tpu' (the Mosaic kernel, pltpu.InterpretParams()).

Tolerances (max abs error, inputs ~N(0, 1), outputs of order 1-10):
  float64, 'gpu' kernel vs ssd_naive / ssd_reference: forward 1e-12, gradients 1e-11
    (seen: 9e-15 and 9e-14)
  float32, 'tpu' kernel vs ssd_reference: forward 2e-5, gradients 5e-4 (seen: 1e-6,
    6e-5; the TPU interpreter has no float64); decode steps vs the scan 1e-5
  bfloat16 vs the float32 reference on the same rounded inputs: 1e-2 (forward) and
    2e-2 (gradients) of each output's largest magnitude (seen: 2.5e-3, 5.8e-3)
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from model import ssd as ssd_lib
from model.kernels import ssd_pallas

CHUNK = 16


def _inputs(seed, *, b=2, l=45, h=4, p=16, g=2, n=8, dtype=jnp.float32, with_init=True,
            with_segments=True, dt_scale=1.0):
  """Random scan inputs; segments are contiguous runs starting anywhere."""
  ks = jax.random.split(jax.random.PRNGKey(seed), 8)
  args = {
      "x": jax.random.normal(ks[0], (b, l, h, p), dtype),
      "dt": (dt_scale * jax.nn.softplus(jax.random.normal(ks[1], (b, l, h)) - 1.0)
             ).astype(dtype),
      "A": -jnp.exp(jax.random.uniform(ks[2], (h,), minval=-1.0, maxval=1.5)).astype(dtype),
      "B": jax.random.normal(ks[3], (b, l, g, n), dtype),
      "C": jax.random.normal(ks[4], (b, l, g, n), dtype),
      "D": jax.random.normal(ks[5], (h,), dtype),
  }
  kwargs = {
      "initial_state": (jax.random.normal(ks[6], (b, h, p, n), dtype) if with_init
                        else None),
      "segment_ids": (jnp.cumsum(jax.random.bernoulli(ks[7], 0.1, (b, l)), axis=1,
                                 dtype=jnp.int32) if with_segments else None),
  }
  return args, kwargs


def _loss_grads(scan, args, kwargs, seed):
  """Gradients of a random linear function of (y, final state) w.r.t. every input."""
  y, state = jax.eval_shape(lambda: scan(**args, **kwargs))
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  w_y = jax.random.normal(k1, y.shape, jnp.float32).astype(y.dtype)
  w_state = jax.random.normal(k2, state.shape, jnp.float32).astype(state.dtype)
  init = kwargs["initial_state"]

  def loss(args, init):
    y, state = scan(**args, **{**kwargs, "initial_state": init})
    return (jnp.sum(y.astype(jnp.float32) * w_y.astype(jnp.float32))
            + jnp.sum(state.astype(jnp.float32) * w_state.astype(jnp.float32)))

  return jax.grad(loss, argnums=(0, 1))(args, init)


def _pallas(backend, **options):
  return lambda **kw: ssd_pallas.ssd(**kw, chunk_size=CHUNK, interpret=True,
                                     backend=backend, **options)


def _naive(**kw):
  return ssd_lib.ssd_naive(**kw)


def _reference(**kw):
  return ssd_lib.ssd_reference(**kw, chunk_size=CHUNK)


CASES = {
    # length a multiple of the chunk, one group, no state, no segments, 1 tile/chunk
    "aligned": dict(l=32, g=1, with_init=False, with_segments=False, block_q=16),
    # ragged length, 2 groups, initial state, segments, 2 tiles/chunk
    "ragged": dict(l=45, g=2, with_init=True, with_segments=True, block_q=8),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_kernel_forward_matches_naive_float64(case):
  opts = dict(CASES[case])
  block_q = opts.pop("block_q")
  with jax.enable_x64(True):
    args, kwargs = _inputs(1, dtype=jnp.float64, **opts)
    y, state = _pallas("gpu", block_q=block_q)(**args, **kwargs)
    y_naive, state_naive = _naive(**args, **kwargs)
    y_ref, state_ref = _reference(**args, **kwargs)
  chex.assert_shape(y, args["x"].shape)
  chex.assert_shape(state, (2, 4, 16, 8))
  chex.assert_type([y, state], jnp.float64)
  chex.assert_trees_all_close((y, state), (y_naive, state_naive), atol=1e-12, rtol=0)
  chex.assert_trees_all_close((y, state), (y_ref, state_ref), atol=1e-12, rtol=0)


def test_gpu_kernel_gradients_match_naive_float64():
  with jax.enable_x64(True):
    args, kwargs = _inputs(2, dtype=jnp.float64)
    grads = _loss_grads(_pallas("gpu", block_q=8), args, kwargs, seed=3)
    grads_naive = _loss_grads(_naive, args, kwargs, seed=3)
  chex.assert_trees_all_equal_shapes_and_dtypes(grads, grads_naive)
  chex.assert_trees_all_close(grads, grads_naive, atol=1e-11, rtol=0)


def test_tpu_kernel_matches_reference_float32():
  args, kwargs = _inputs(4, b=1)  # the TPU interpreter is slow per grid step
  scan = _pallas("tpu")
  y, state = scan(**args, **kwargs)
  y_ref, state_ref = _reference(**args, **kwargs)
  chex.assert_type([y, state], jnp.float32)
  chex.assert_trees_all_close((y, state), (y_ref, state_ref), atol=2e-5, rtol=0)
  grads = _loss_grads(scan, args, kwargs, seed=5)
  grads_ref = _loss_grads(_reference, args, kwargs, seed=5)
  chex.assert_trees_all_equal_shapes_and_dtypes(grads, grads_ref)
  chex.assert_trees_all_close(grads, grads_ref, atol=5e-4, rtol=0)


def _assert_close_relative(actual, expected, fraction):
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    a, e = np.asarray(a, np.float32), np.asarray(e, np.float32)
    scale = np.max(np.abs(e))
    np.testing.assert_array_less(np.max(np.abs(a - e)), fraction * scale + 1e-6)


def test_bfloat16_matches_float32_reference():
  args, kwargs = _inputs(6, dtype=jnp.bfloat16)
  scan = _pallas("gpu", block_q=8)
  y, state = scan(**args, **kwargs)
  chex.assert_type([y, state], [jnp.bfloat16, jnp.float32])
  as_f32 = lambda t: jax.tree.map(lambda v: None if v is None else v.astype(jnp.float32)
                                  if v.dtype == jnp.bfloat16 else v, t)
  y_ref, state_ref = _reference(**as_f32(args), **as_f32(kwargs))
  _assert_close_relative((y, state), (y_ref, state_ref), 1e-2)
  grads = _loss_grads(scan, args, kwargs, seed=7)
  grads_ref = _loss_grads(_reference, as_f32(args), as_f32(kwargs), seed=7)
  chex.assert_trees_all_equal_structs(grads, grads_ref)
  chex.assert_type(grads[0]["x"], jnp.bfloat16)
  _assert_close_relative(grads, grads_ref, 2e-2)


def test_strong_decay_does_not_overflow():
  """Cumulative decay far below −88 within a chunk (exp(−a) would overflow fp32)."""
  args, kwargs = _inputs(8, dt_scale=60.0)
  scan = _pallas("gpu", block_q=8)
  a_min = float(jnp.min(jnp.cumsum(args["dt"][:, :CHUNK] * args["A"][None, None], axis=1)))
  assert a_min < -400.0
  y, state = scan(**args, **kwargs)
  with jax.enable_x64(True):
    to64 = lambda t: jax.tree.map(lambda v: v.astype(jnp.float64), t)
    y_naive, state_naive = _naive(**to64(args), **to64(kwargs))
  chex.assert_tree_all_finite((y, state))
  chex.assert_trees_all_close((y, state), (y_naive, state_naive), atol=1e-4, rtol=2e-5)
  chex.assert_tree_all_finite(_loss_grads(scan, args, kwargs, seed=9))


@pytest.mark.parametrize("backend", ["gpu", "tpu"])
def test_decode_steps_match_forward(backend):
  args, kwargs = _inputs(10, l=6, with_segments=False)
  state = kwargs["initial_state"]
  ys = []
  for t in range(6):
    y_t, state = ssd_pallas.ssd_step(
        state, args["x"][:, t], args["dt"][:, t], args["A"], args["B"][:, t],
        args["C"][:, t], args["D"], interpret=True, backend=backend)
    ys.append(y_t)
  chex.assert_shape(ys[0], (2, 4, 16))
  chex.assert_type(state, jnp.float32)
  y_scan, state_scan = _pallas(backend)(**args, **kwargs)
  chex.assert_trees_all_close((jnp.stack(ys, axis=1), state), (y_scan, state_scan),
                              atol=1e-5, rtol=0)


def test_model_dispatch_matches_xla():
  args, kwargs = _inputs(11)
  out = ssd_lib.ssd(**args, **kwargs, chunk_size=CHUNK, impl="pallas_interpret")
  out_xla = ssd_lib.ssd(**args, **kwargs, chunk_size=CHUNK, impl="xla")
  chex.assert_trees_all_close(out, out_xla, atol=1e-4, rtol=0)
  step_args = (kwargs["initial_state"], args["x"][:, 0], args["dt"][:, 0], args["A"],
               args["B"][:, 0], args["C"][:, 0], args["D"])
  chex.assert_trees_all_close(ssd_lib.ssd_decode(*step_args, impl="pallas_interpret"),
                              ssd_lib.ssd_decode(*step_args, impl="xla"),
                              atol=1e-5, rtol=0)


def test_pallas_on_a_mesh_matches_one_device_and_reference():
  """ssm_impl='pallas' on CPU (the compile target picks interpret mode) under the
  user's ``jax.set_mesh`` of 8 devices (the kernels shard_map themselves: batch over
  data x fsdp, heads and groups over tensor): scan, gradients and decode step equal one
  device's, which equal the XLA reference."""
  assert jax.device_count() == 8
  mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"),
                       axis_types=(jax.sharding.AxisType.Auto,) * 3)
  args, kwargs = _inputs(12, b=4, l=40)
  step_args = (kwargs["initial_state"], args["x"][:, 0], args["dt"][:, 0], args["A"],
               args["B"][:, 0], args["C"][:, 0], args["D"])

  def scan_grads_decode(impl):
    scan = lambda **kw: ssd_lib.ssd(**kw, chunk_size=CHUNK, impl=impl)
    return (scan(**args, **kwargs), _loss_grads(scan, args, kwargs, seed=13),
            ssd_lib.ssd_decode(*step_args, impl=impl))

  one_device = jax.jit(lambda: scan_grads_decode("pallas"))()
  sharded = jax.jit(lambda: scan_grads_decode("pallas"))
  with jax.set_mesh(mesh):   # the kernels shard_map themselves over JAX's mesh
    text = sharded.lower().as_text()
    assert "sdy.manual_computation" in text or "shard_map" in text
    chex.assert_trees_all_close(sharded(), one_device, atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(one_device, scan_grads_decode("xla"), atol=5e-4, rtol=0)


# (chunk, head dim p, state n): production sizes, then sizes neither lowering tiles as
# they are (the kernels run them at ``ssd_pallas.tile_sizes``, zero-padded).
TILE_TABLE = [(256, 64, 128), (64, 64, 128), (96, 48, 96), (32, 16, 16), (128, 8, 8)]


@pytest.mark.parametrize("platform,backend,chunk,p,n", [
    *(("cuda", "gpu", *shape) for shape in TILE_TABLE),
    *(("tpu", "tpu", *shape) for shape in TILE_TABLE[:2])])
def test_kernels_lower_for_hardware(platform, backend, chunk, p, n):
  """The Triton lowering accepts the scan (forward and backward) and the decode step at
  every shape of the table, Mosaic at two of them, bf16: lowered here without a device,
  not compiled (tests/test_tpu_compile.py compiles the whole table for TPU)."""
  s = jax.ShapeDtypeStruct
  b, l, h = 1, 256, 2
  args = (s((b, l, h, p), jnp.bfloat16), s((b, l, h), jnp.float32), s((h,), jnp.float32),
          s((b, l, 1, n), jnp.bfloat16), s((b, l, 1, n), jnp.bfloat16), s((h,), jnp.float32))

  def forward_backward(x, dt, A, B, C, D):
    scan = lambda *a: ssd_pallas.ssd(*a, chunk_size=chunk, backend=backend)[0]
    y, vjp = jax.vjp(scan, x, dt, A, B, C, D)
    return vjp(y)

  def decode(state, x, dt, A, B, C, D):
    return ssd_pallas.ssd_step(state, x, dt, A, B, C, D, backend=backend)

  step_args = (s((b, h, p, n), jnp.float32), s((b, h, p), jnp.bfloat16),
               s((b, h), jnp.float32), args[2], s((b, 1, n), jnp.bfloat16),
               s((b, 1, n), jnp.bfloat16), args[5])
  for fn, fn_args in ((forward_backward, args), (decode, step_args)):
    lowered = jax.jit(fn).trace(*fn_args).lower(lowering_platforms=(platform,))
    assert "custom_call" in lowered.as_text()


def test_kernels_at_hardware_tile_sizes_equal_the_reference():
  """Run at the sizes the GPU lowering uses (``tile_legal``: chunk 24 → 32, p 12 and
  n 10 → 16; TPU's only lengthens the chunk, to 128), interpreted: the padded scan, its
  gradients and the padded decode step equal the XLA reference at the model's sizes."""
  backend = "gpu"
  assert ssd_pallas.tile_sizes("gpu", 24, 12, 10) == (32, 16, 16)
  assert ssd_pallas.tile_sizes("tpu", 24, 12, 10) == (128, 12, 10)
  args, kwargs = _inputs(21, b=1, l=40, h=2, p=12, g=1, n=10)
  padded = lambda **kw: ssd_pallas.ssd(**kw, chunk_size=24, backend=backend,
                                       interpret=True, tile_legal=True)
  reference = lambda **kw: ssd_lib.ssd(**kw, chunk_size=24, impl="xla")
  chex.assert_trees_all_close(padded(**args, **kwargs), reference(**args, **kwargs),
                              atol=1e-4, rtol=0)
  chex.assert_trees_all_close(_loss_grads(padded, args, kwargs, seed=22),
                              _loss_grads(reference, args, kwargs, seed=22),
                              atol=5e-4, rtol=0)
  step_args = (kwargs["initial_state"], args["x"][:, 0], args["dt"][:, 0], args["A"],
               args["B"][:, 0], args["C"][:, 0], args["D"])
  chex.assert_trees_all_close(
      ssd_pallas.ssd_step(*step_args, backend=backend, interpret=True, tile_legal=True),
      ssd_lib.ssd_decode(*step_args, impl="xla"), atol=1e-5, rtol=0)


def test_hybrid_model_pallas_matches_xla():
  """A whole hybrid model (Mamba-2 + attention + MLP): loss and every gradient."""
  from model import config as mcfg, lm  # pylint: disable=g-import-not-at-top
  cfg_xla = mcfg.tiny(ssm_impl="xla")
  cfg_pallas = cfg_xla.replace(ssm_impl="pallas_interpret")
  params = lm.init(jax.random.key(0), cfg_xla)
  seq = 2 * cfg_xla.chunk_size - 5
  tokens = jax.random.randint(jax.random.key(1), (2, seq), 0, cfg_xla.vocab_size)
  segment_ids = jnp.array([[1] * 11 + [2] * (seq - 11), [1] * seq])

  def loss(params, cfg):
    logits, _ = lm.forward(params, tokens, cfg, segment_ids=segment_ids)
    log_probs = jax.nn.log_softmax(logits[:, :-1])
    return -jnp.mean(jnp.take_along_axis(log_probs, tokens[:, 1:, None], axis=-1))

  value_and_grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
  loss_pallas, grads_pallas = value_and_grad(params, cfg_pallas)
  loss_xla, grads_xla = value_and_grad(params, cfg_xla)
  chex.assert_trees_all_close(loss_pallas, loss_xla, atol=1e-5, rtol=0)
  chex.assert_trees_all_close(grads_pallas, grads_xla, atol=1e-5, rtol=1e-4)

