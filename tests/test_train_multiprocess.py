"""Two processes joined by jax.distributed train one model and agree with one process."""

import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6
# FSDP over 2 devices; every process reads the whole batch so the data match one process.
ARGS = ["--config=configs/tiny_hybrid.py", f"--config.train.steps={STEPS}",
        "--config.train.seq_len=64", "--config.train.global_batch_size=8",
        "--config.train.log_every=1", "--config.optimizer.warmup_steps=2",
        "--config.train.read_global_batch=True", "--config.mesh.data=1",
        "--config.mesh.fsdp=-1", "--config.checkpoint.every_steps=3",
        "--config.sample.max_new_tokens=4"]


def env(devices_per_process):
  return {**os.environ, "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
          "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}"}


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [record["loss"] for record in map(json.loads, f)]


def test_two_processes_train_together_like_one(tmp_path):
  single = tmp_path / "single"
  result = subprocess.run([sys.executable, "-m", "train.main", f"--workdir={single}", *ARGS],
                          cwd=ROOT, env=env(2), capture_output=True, text=True, timeout=240)
  assert result.returncode == 0, result.stderr[-3000:]

  multi = tmp_path / "multi"
  address = f"127.0.0.1:{free_port()}"
  processes = [
      subprocess.Popen(
          [sys.executable, "-m", "train.main", f"--workdir={multi}", *ARGS,
           f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}"],
          cwd=ROOT, env=env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outputs = []
  try:
    for process in processes:
      outputs.append(process.communicate(timeout=240))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr[-3000:]

  assert "mesh {'data': 1, 'fsdp': 2, 'tensor': 1}" in outputs[0][0]
  assert "step " not in outputs[1][0] and "samples:" not in outputs[1][0]  # only process 0 logs
  assert losses(multi) == pytest.approx(losses(single), rel=1e-5)
  assert sorted(os.listdir(multi / "checkpoints")) == ["3", "6"]
  data_states = [name for name in os.listdir(multi / "checkpoints" / "6" / "data")
                 if name.endswith(".json")]
  assert sorted(data_states) == ["process_0-of-2.json", "process_1-of-2.json"]
  samples = lambda stdout: stdout.split("samples:")[1]
  assert samples(outputs[0][0]) == samples(result.stdout)
