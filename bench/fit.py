"""Does every shipped config fit the TPU slice it names? One table, from real compiles.

Each config's train step is compiled by libtpu's compiler for its ``mesh.topology``
(``train/aot.py``; no TPU needed) and the per-device memory the compiler reports is
set against the chip's HBM. A config fits when its total is at most 90% of HBM.

  python bench/fit.py                  # every shipped config, prints the table
  python bench/fit.py --write          # and replaces the table in bench/RESULTS.md
  python bench/fit.py --only llama_1b  # one config

A full-depth compile takes minutes per config on a small CPU host.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from train import aot  # pylint: disable=g-import-not-at-top

CONFIGS = ("nemotron_h_8b", "nemotron_h_4b", "prune_nemotron_h_8b", "llama_1b",
           "hybrid_125m")
FIT_FRACTION = 0.9
BEGIN, END = "<!-- fit table (bench/fit.py --write) -->", "<!-- end fit table -->"
HEADER = ("| config | topology | mesh (data, fsdp, tensor) | batch × seq / accum | "
          "params | optimizer | other args | temporaries | **total** | HBM | headroom "
          "| TFLOP/step/device | fits |\n|" + "---|" * 13)


def row(name: str) -> str:
  config = importlib.import_module(f"configs.{name}").get_config()
  train = config.train
  shape = f"{train.global_batch_size} × {train.seq_len} / {train.grad_accum_steps}"
  gib = lambda v: f"{v / aot.GiB:.2f} GiB"
  started = time.time()
  try:
    _, report = aot.compile_train_step(config)
  except aot.DoesNotFit as e:
    message = str(e).split("does not fit: ")[-1][:160]
    return (f"| `{name}` | {config.mesh.topology} | | {shape} | | | | | {message} | | | "
            f"| **no** |")
  print(f"{name}: compiled in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
  mesh = ", ".join(str(report.mesh[a]) for a in ("data", "fsdp", "tensor"))
  other = report.total_bytes - report.param_bytes - report.optimizer_bytes - report.temp_bytes
  fits = report.fraction_of_hbm <= FIT_FRACTION
  return (f"| `{name}` | {report.topology} | {mesh} | {shape} | {gib(report.param_bytes)} | "
          f"{gib(report.optimizer_bytes)} | {gib(other)} | {gib(report.temp_bytes)} | "
          f"**{gib(report.total_bytes)}** | {gib(report.hbm_bytes)} | "
          f"{100 * (1 - report.fraction_of_hbm):.1f}% | {report.flops / 1e12:.1f} | "
          f"{'yes' if fits else '**no**'} |")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", choices=CONFIGS, action="append")
  parser.add_argument("--write", action="store_true",
                      help="replace the table in bench/RESULTS.md")
  args = parser.parse_args()
  rows = [row(name) for name in args.only or CONFIGS]
  table = "\n".join([HEADER] + rows)
  print(table)
  if args.write:
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text()
    block = f"{BEGIN}\n{table}\n{END}"
    pattern = re.escape(BEGIN) + ".*?" + re.escape(END)
    if not re.search(pattern, text, flags=re.DOTALL):
      raise SystemExit(f"{path} has no {BEGIN} ... {END} block to replace")
    path.write_text(re.sub(pattern, lambda _: block, text, flags=re.DOTALL))


if __name__ == "__main__":
  main()
