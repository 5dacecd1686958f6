"""The sandbox holds hostile code: each attack contained, the test process unharmed, and
the next execution working (rl/sandbox.py)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from rl import sandbox

LIMITS = sandbox.Limits(timeout_s=3.0, memory_mb=512, max_output_bytes=4096)


@pytest.fixture(autouse=True)
def sandboxed(request):
  """The containment tests need a machine that can sandbox (root and util-linux); the
  two refusal tests (a missing tool, no root) run everywhere."""
  if request.node.name in ("test_a_missing_tool_is_a_clear_error",
                           "test_without_root_it_refuses_instead_of_running_unsandboxed"):
    return
  try:
    sandbox.check()
  except sandbox.SandboxUnavailable as error:
    pytest.skip(f"this machine cannot sandbox (root and util-linux's unshare, mount, "
                f"setpriv, prlimit needed): {error}")


def _still_works():
  result = sandbox.run("import math\nprint(math.factorial(20))", LIMITS)
  assert (result.status, result.stdout) == ("ok", "2432902008176640000\n"), result


def test_a_normal_computation_succeeds():
  result = sandbox.run("print(sum(i * i for i in range(10)))\n", LIMITS)
  assert (result.status, result.stdout, result.reason) == ("ok", "285\n", "")


def test_an_exception_is_an_error_with_its_traceback():
  result = sandbox.run("1 / 0\n", LIMITS)
  assert result.status == "error" and "ZeroDivisionError" in result.stderr
  _still_works()


def test_an_infinite_loop_is_stopped_by_the_wall_clock():
  result = sandbox.run("while True:\n  pass\n", sandbox.Limits(timeout_s=1.0))
  assert result.status == "timeout" and result.wall_s < 5.0, result
  _still_works()


def test_a_fork_bomb_is_contained():
  code = "import os\nwhile True:\n  try:\n    os.fork()\n  except OSError:\n    pass\n"
  result = sandbox.run(code, sandbox.Limits(timeout_s=2.0, processes=8))
  assert result.status in ("timeout", "killed", "error"), result
  _still_works()


def test_allocating_8_gib_fails_inside():
  result = sandbox.run("x = bytearray(8 << 30)\nprint(len(x))\n", LIMITS)
  assert result.status in ("error", "killed") and "8589934592" not in result.stdout, result
  _still_works()


def test_no_writes_outside_its_directory_and_no_reads_of_secrets_or_the_repository(
    tmp_path):
  home = os.path.expanduser("~")
  targets = {"home": os.path.join(home, "reasonax-sandbox-was-here"),
             "tmp": os.path.join(str(tmp_path), "written")}
  code = "\n".join([
      "import os",
      f"for path in {sorted(targets.values())!r}:",
      "  try:",
      "    open(path, 'w').write('pwned')",
      "    print('WROTE', path)",
      "  except OSError as error:",
      "    print('refused', type(error).__name__)",
      f"for path in ['/etc/shadow', {os.path.join(sandbox.REPOSITORY, 'setup.py')!r}]:",
      "  try:",
      "    print('READ', path, len(open(path).read()))",
      "  except OSError as error:",
      "    print('refused', type(error).__name__)",
      "open('mine.txt', 'w').write('ok')",
      "print(open('mine.txt').read())"])
  result = sandbox.run(code, LIMITS)
  assert result.status == "ok", result
  assert "WROTE" not in result.stdout and "READ" not in result.stdout, result.stdout
  assert result.stdout.count("refused") == 4 and result.stdout.endswith("ok\n")
  assert not any(os.path.exists(path) for path in targets.values())


def test_no_socket_reaches_a_listener_on_the_loopback():
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    code = ("import socket\n"
            "try:\n"
            f"  socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "  print('CONNECTED')\n"
            "except OSError as error:\n"
            "  print('refused', type(error).__name__)\n")
    result = sandbox.run(code, LIMITS)
    with pytest.raises(TimeoutError):
      listener.accept()
  assert result.status == "ok" and result.stdout.startswith("refused"), result


def test_it_cannot_signal_the_parent():
  code = ("import os, signal\n"
          f"for pid in (os.getppid(), {os.getpid()}):\n"
          "  try:\n"
          "    os.kill(pid, signal.SIGKILL)\n"
          "  except OSError as error:\n"
          "    print('refused', type(error).__name__)\n")
  result = sandbox.run(code, LIMITS)
  assert result.status in ("ok", "killed"), result   # getppid() is 0 in its namespace
  _still_works()                                     # and this process is alive


def test_huge_output_is_truncated_not_kept():
  result = sandbox.run("import sys\nsys.stdout.write('x' * (100 << 20))\n",
                       sandbox.Limits(timeout_s=20.0, max_output_bytes=4096))
  assert result.status == "ok" and result.truncated and result.stdout == "x" * 4096, (
      result.status, result.reason, len(result.stdout))


def test_many_run_in_parallel_in_order():
  codes = [f"print({i} ** 2)" for i in range(6)] + ["while True: pass"]
  results = sandbox.run_many(codes, sandbox.Limits(timeout_s=2.0), workers=4)
  assert [r.stdout for r in results[:6]] == [f"{i * i}\n" for i in range(6)]
  assert results[6].status == "timeout"


def test_a_missing_tool_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(sandbox.shutil, "which",
                      lambda tool: None if tool == "unshare" else "/usr/bin/" + tool)
  with pytest.raises(sandbox.SandboxUnavailable, match="unshare"):
    sandbox.run("print(1)", LIMITS)


def test_command_line_prints_one_json_object():
  result = subprocess.run([sys.executable, "-m", "rl.sandbox", "--timeout=5"],
                          input="print('hi')\n", capture_output=True, text=True,
                          cwd=sandbox.REPOSITORY, timeout=60, check=True)
  record = json.loads(result.stdout)
  assert (record["status"], record["stdout"], record["returncode"]) == ("ok", "hi\n", 0)


def test_without_root_it_refuses_instead_of_running_unsandboxed(monkeypatch):
  monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
  with pytest.raises(sandbox.SandboxUnavailable, match="needs root"):
    sandbox.run("print(1)", LIMITS)
