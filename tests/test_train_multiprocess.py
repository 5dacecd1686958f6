"""Two processes joined by jax.distributed train one model and agree with one process:
GRPO (rollouts and rewards on the host, each process its share of the prompts) and RLP
(the pretraining data path, sampling inside the sharded step)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from cli_runs import ROOT, env

STEPS = 4
# FSDP over 2 devices; every process reads the whole batch so the data match one process.
COMMON = [f"--config.train.steps={STEPS}", "--config.train.log_every=1",
          "--config.optimizer.warmup_steps=1", "--config.train.read_global_batch=True",
          "--config.mesh.data=1", "--config.mesh.fsdp=-1", "--config.checkpoint.every_steps=2",
          "--config.eval.max_text_rows=2", "--config.sample.max_new_tokens=4"]
LOOPS = {
    "grpo": ["--config=configs/grpo.py", "--config.train.global_batch_size=16",
             "--config.eval.max_records=8"],
    "rlp": ["--config=configs/rlp.py", "--config.train.seq_len=64"],
}
TIMING = {"step_time_s", "tokens_per_s", "mfu"}


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def records(workdir, kind):
  with open(os.path.join(workdir, f"{kind}.jsonl")) as f:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in map(json.loads, f)]


def assert_close(got, expected):
  assert got.keys() == expected.keys()
  for key, value in expected.items():
    if isinstance(value, float):
      assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    else:
      assert got[key] == value, key


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_two_processes_train_together_like_one(loop, tmp_path):
  args = [*LOOPS[loop], *COMMON]
  single = tmp_path / "single"
  result = subprocess.run([sys.executable, "-m", "train.main", f"--workdir={single}", *args],
                          cwd=ROOT, env=env(2), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]

  multi = tmp_path / "multi"
  address = f"127.0.0.1:{free_port()}"
  processes = [
      subprocess.Popen(
          [sys.executable, "-m", "train.main", f"--workdir={multi}", *args,
           f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}"],
          cwd=ROOT, env=env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outputs = []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=300))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]

  assert "mesh {'data': 1, 'fsdp': 2, 'tensor': 1}" in outputs[0][0]
  assert "step " not in outputs[1][0] and "sample:" not in outputs[1][0]  # only process 0 logs
  for kind in ("metrics", "eval"):
    got, expected = records(multi, kind), records(single, kind)
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected):
      assert_close(g, e)
  assert sorted(os.listdir(multi / "checkpoints")) == ["2", "4"]
  data_states = [name for name in os.listdir(multi / "checkpoints" / "4" / "data")
                 if name.endswith(".json")]
  assert sorted(data_states) == ["process_0-of-2.json", "process_1-of-2.json"]
  samples = lambda stdout: [line for line in stdout.splitlines() if line.startswith("sample:")]
  assert samples(outputs[0][0]) == samples(result.stdout)
