"""SSD scan benchmark: our Pallas kernel vs XLA ``ssd_reference`` vs mamba_ssm Triton.

One run prints one table: forward and forward+backward times, achieved bytes/s and
FLOP/s against a copy-bandwidth and a bf16-matmul ceiling measured by the same run,
and the speed ratios of the Pallas kernel to each baseline. Each implementation runs
in its own subprocess (``--only``), so one that aborts (Triton can) leaves the others.

  python bench/ssd.py                  # GPU: b 8, h 32, p 64, n 128, chunk 256, bf16,
                                       # seqlen 1K–16K (4K is the reference row)
  python bench/ssd.py --small          # tiny shape; on CPU Pallas runs in interpret
                                       # mode (proves the script, not a performance number)
  python bench/ssd.py --only pallas    # one implementation, JSON lines on stdout

mamba_ssm's ``mamba_chunk_scan_combined`` is imported from a git-ignored ``.vendor/``
folder when present (its ``ops/triton/*.py``, ``utils/torch.py``,
``utils/determinism.py`` with empty ``__init__.py`` files); otherwise its column is blank.

Bytes are the fewest an implementation must move (inputs read once, outputs written
once); FLOPs are the dense matmul FLOPs of the chunked algorithm with C·Bᵀ once per
group, and 3x the forward for forward+backward.
"""

from __future__ import annotations

# Heavy imports (jax, torch) live inside the subprocess entry points.
# pylint: disable=g-import-not-at-top

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # torch shares the GPU
ROOT = pathlib.Path(__file__).resolve().parent.parent
IMPLS = ("pallas", "xla", "triton")
MODES = ("fwd", "fwd+bwd")


@dataclasses.dataclass(frozen=True)
class Setup:
  batch: int
  heads: int
  headdim: int
  dstate: int
  groups: int
  chunk: int
  seqlens: tuple[int, ...]
  reference_seqlen: int
  copy_elems: int       # size of the bandwidth-ceiling copy
  matmul_size: int      # side of the FLOP-ceiling matmul
  iters: int


FULL = Setup(batch=8, heads=32, headdim=64, dstate=128, groups=1, chunk=256,
             seqlens=(1024, 2048, 4096, 8192, 16384), reference_seqlen=4096,
             copy_elems=1 << 28, matmul_size=8192, iters=20)
SMALL = Setup(batch=1, heads=2, headdim=16, dstate=16, groups=1, chunk=16,
              seqlens=(32, 64), reference_seqlen=64, copy_elems=1 << 22,
              matmul_size=512, iters=2)


def model_flops(s: Setup, seqlen: int, mode: str) -> float:
  tokens = s.batch * seqlen
  forward = 2 * tokens * (s.groups * s.chunk * s.dstate + s.heads * s.chunk * s.headdim
                          + 2 * s.heads * s.dstate * s.headdim)
  return forward * (1 if mode == "fwd" else 3)


def min_bytes(s: Setup, seqlen: int, mode: str) -> float:
  tokens = s.batch * seqlen
  x = tokens * s.heads * s.headdim * 2       # bf16 (y, dy, dx alike)
  bc = 2 * tokens * s.groups * s.dstate * 2  # B and C, bf16
  dt = tokens * s.heads * 4                  # fp32
  forward = 2 * x + bc + dt                  # read x, B, C, dt; write y
  backward = 3 * x + 2 * bc + 2 * dt         # read x, dy, B, C, dt; write dx, dB, dC, ddt
  return forward if mode == "fwd" else forward + backward


# ----------------------------------------------------------------- one implementation


def _jax_inputs(s: Setup, seqlen: int):
  import jax
  import jax.numpy as jnp
  ks = jax.random.split(jax.random.PRNGKey(0), 7)
  b, h, p, g, n = s.batch, s.heads, s.headdim, s.groups, s.dstate
  return dict(
      x=jax.random.normal(ks[0], (b, seqlen, h, p), jnp.bfloat16),
      dt=jax.nn.softplus(jax.random.normal(ks[1], (b, seqlen, h)) - 2.0),
      A=-jnp.exp(jax.random.uniform(ks[2], (h,), maxval=2.5)),
      B=jax.random.normal(ks[3], (b, seqlen, g, n), jnp.bfloat16),
      C=jax.random.normal(ks[4], (b, seqlen, g, n), jnp.bfloat16),
      D=jax.random.normal(ks[5], (h,)),
      dy=jax.random.normal(ks[6], (b, seqlen, h, p), jnp.bfloat16),
  )


def _time_jax(fn, args, iters: int) -> float:
  """Seconds per call: compile and warm up, then `iters` dispatches and one block."""
  import jax
  jax.block_until_ready(fn(*args))
  jax.block_until_ready(fn(*args))
  samples = []
  for _ in range(3):
    start = time.perf_counter()
    for _ in range(iters):
      out = fn(*args)
    jax.block_until_ready(out)
    samples.append((time.perf_counter() - start) / iters)
  return statistics.median(samples)


def _run_jax_impl(impl: str, s: Setup):
  import jax
  import jax.numpy as jnp
  sys.path.insert(0, str(ROOT))
  from model import ssd as ssd_lib
  from model.kernels import ssd_pallas

  interpret = jax.default_backend() == "cpu"
  if impl == "pallas":
    scan = lambda x, dt, A, B, C, D: ssd_pallas.ssd(x, dt, A, B, C, D, chunk_size=s.chunk,
                                                    interpret=interpret)[0]
  else:
    scan = lambda x, dt, A, B, C, D: ssd_lib.ssd_reference(x, dt, A, B, C, D,
                                                           chunk_size=s.chunk)[0]

  def forward_backward(x, dt, A, B, C, D, dy):
    _, vjp = jax.vjp(scan, x, dt, A, B, C, D)
    return vjp(dy)

  fns = {"fwd": jax.jit(scan), "fwd+bwd": jax.jit(forward_backward)}
  for seqlen in s.seqlens:
    inputs = _jax_inputs(s, seqlen)
    args = [inputs[k] for k in ("x", "dt", "A", "B", "C", "D")]
    for mode in MODES:
      record = {"impl": impl, "seqlen": seqlen, "mode": mode}
      try:
        call_args = args + ([inputs["dy"]] if mode == "fwd+bwd" else [])
        record["seconds"] = _time_jax(fns[mode], call_args, s.iters)
        if mode == "fwd":
          y = fns["fwd"](*args)
          record["checksum"] = float(jnp.mean(jnp.abs(y.astype(jnp.float32))))
      except Exception as e:  # pylint: disable=broad-except
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
      print("RESULT " + json.dumps(record), flush=True)


def _run_triton(s: Setup):
  sys.path.insert(0, str(ROOT / ".vendor"))
  try:
    import torch
    import triton.testing
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
  except ImportError as e:
    print(f"triton baseline unavailable: {e}", file=sys.stderr)
    return
  if not torch.cuda.is_available():
    print("triton baseline needs a CUDA GPU", file=sys.stderr)
    return

  for seqlen in s.seqlens:
    inputs = {k: torch.from_dlpack(v) for k, v in _jax_inputs(s, seqlen).items()}
    leaves = {k: v.detach().clone().requires_grad_(k != "dy") for k, v in inputs.items()}
    scan = lambda: mamba_chunk_scan_combined(leaves["x"], leaves["dt"], leaves["A"],
                                             leaves["B"], leaves["C"], s.chunk,
                                             D=leaves["D"])
    wrt = [leaves[k] for k in ("x", "dt", "A", "B", "C", "D")]
    calls = {
        "fwd": lambda: scan(),
        "fwd+bwd": lambda: torch.autograd.grad(scan(), wrt, leaves["dy"]),
    }
    for mode in MODES:
      record = {"impl": "triton", "seqlen": seqlen, "mode": mode}
      try:
        with torch.set_grad_enabled(mode == "fwd+bwd"):
          calls[mode]()  # autotuning
          record["seconds"] = triton.testing.do_bench(calls[mode],
                                                      return_mode="median") / 1e3
          if mode == "fwd":
            record["checksum"] = float(scan().float().abs().mean())
      except Exception as e:  # pylint: disable=broad-except
        record["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
      print("RESULT " + json.dumps(record), flush=True)


def _run_ceilings(s: Setup):
  import jax
  import jax.numpy as jnp
  big = jnp.ones((s.copy_elems,), jnp.bfloat16)
  copy_s = _time_jax(jax.jit(lambda a: a + 1), [big], s.iters)
  m = jnp.ones((s.matmul_size, s.matmul_size), jnp.bfloat16)
  matmul_s = _time_jax(jax.jit(lambda a, b: a @ b), [m, m], s.iters)
  print("RESULT " + json.dumps({
      "impl": "ceilings", "device": str(jax.devices()[0].device_kind),
      "backend": jax.default_backend(),
      "bytes_per_s": 2 * big.nbytes / copy_s,
      "flops_per_s": 2 * s.matmul_size ** 3 / matmul_s}), flush=True)


# ----------------------------------------------------------------- driver and table


def _collect(only: str, small: bool, timeout: int) -> list[dict]:
  cmd = [sys.executable, __file__, "--only", only] + (["--small"] if small else [])
  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
  except subprocess.TimeoutExpired:
    print(f"[{only}] timed out after {timeout} s", file=sys.stderr)
    return []
  if proc.returncode:
    print(f"[{only}] exited {proc.returncode}: {proc.stderr.strip()[-800:]}",
          file=sys.stderr)
  elif proc.stderr.strip() and only == "triton":
    print(f"[{only}] {proc.stderr.strip()[-300:]}", file=sys.stderr)
  return [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
          if line.startswith("RESULT ")]


def _cell(s: Setup, seqlen: int, mode: str, seconds: float, ceil) -> str:
  bytes_per_s = min_bytes(s, seqlen, mode) / seconds
  flops_per_s = model_flops(s, seqlen, mode) / seconds
  pct = lambda value, key: f"{100 * value / ceil[key]:4.0f}" if ceil else "   ?"
  return (f" | {seconds * 1e3:10.3f} {bytes_per_s / 1e9:7.1f} {pct(bytes_per_s, 'bytes_per_s')}"
          f" {flops_per_s / 1e12:7.2f} {pct(flops_per_s, 'flops_per_s')}")


def _table(s: Setup, small: bool, records: list[dict]) -> str:
  ceil = next((r for r in records if r["impl"] == "ceilings"), None)
  cells = {(r["impl"], r["seqlen"], r["mode"]): r for r in records if "mode" in r}
  lines = [
      f"SSD scan, {'--small, ' if small else ''}device {ceil['device'] if ceil else '?'} "
      f"({ceil['backend'] if ceil else '?'}): b {s.batch}, h {s.heads}, p {s.headdim}, "
      f"n {s.dstate}, g {s.groups}, chunk {s.chunk}, bf16 x/B/C, fp32 dt/A/D",
  ]
  if ceil:
    lines.append(f"ceilings measured here: copy {ceil['bytes_per_s'] / 1e9:.1f} GB/s, "
                 f"bf16 matmul {ceil['flops_per_s'] / 1e12:.2f} TFLOP/s")
  if small and ceil and ceil["backend"] == "cpu":
    lines.append("CPU: Pallas runs in interpret mode; the numbers prove the script only.")
  head = f"{'seqlen':>6} {'mode':<7}"
  for impl in IMPLS:
    head += f" | {impl + ' ms':>10} {'GB/s':>7} {'%bw':>4} {'TFLOP/s':>7} {'%mm':>4}"
  head += " | xla/pallas triton/pallas"
  lines += [head, "-" * len(head)]
  for seqlen in s.seqlens:
    for mode in MODES:
      row = f"{seqlen:>6} {mode:<7}"
      seconds = {}
      for impl in IMPLS:
        r = cells.get((impl, seqlen, mode))
        if r and "seconds" in r:
          seconds[impl] = r["seconds"]
          row += _cell(s, seqlen, mode, r["seconds"], ceil)
        else:
          row += f" | {('error' if r else ''):>10} {'':>7} {'':>4} {'':>7} {'':>4}"
      ratio = lambda base: (f"{seconds[base] / seconds['pallas']:.2f}x"
                            if base in seconds and "pallas" in seconds else "")
      row += f" | {ratio('xla'):>10} {ratio('triton'):>13}"
      lines.append(row)
  checks = {impl: cells.get((impl, s.reference_seqlen, "fwd"), {}).get("checksum")
            for impl in IMPLS}
  lines.append(f"mean |y| at seqlen {s.reference_seqlen} (should agree): "
               + ", ".join(f"{k} {v:.5f}" for k, v in checks.items() if v is not None))
  errors = [f"  {r['impl']} {r['seqlen']} {r['mode']}: {r['error']}"
            for r in records if "error" in r]
  return "\n".join(lines + (["errors:"] + errors if errors else []))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", choices=IMPLS + ("ceilings",),
                      help="run one implementation and print JSON lines")
  parser.add_argument("--small", action="store_true",
                      help="tiny shape (CPU interpret mode smoke test)")
  parser.add_argument("--timeout", type=int, default=1800,
                      help="seconds allowed to each implementation's subprocess")
  args = parser.parse_args()
  setup = SMALL if args.small else FULL
  if args.only == "triton":
    _run_triton(setup)
  elif args.only == "ceilings":
    _run_ceilings(setup)
  elif args.only:
    _run_jax_impl(args.only, setup)
  else:
    records = []
    for only in ("ceilings",) + IMPLS:
      records += _collect(only, args.small, args.timeout)
    print(_table(setup, args.small, records))


if __name__ == "__main__":
  main()
