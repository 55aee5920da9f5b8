"""A terminal sees a progress bar (step, loss, ETA) with the JSON records above it;
a pipe sees JSON lines only, one record per line, no bar."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

ARGS = ["-m", "ARR_COC.Training.train", "--max-steps", "3", "--set", "log_every_n_steps=1",
        "--set", "max_eval_samples=4", "--set", "eval_every_n_steps=0", "--set", "save_every_n_steps=0"]


def _env(tmp_path):
    return dict(os.environ, PYTHONPATH=":".join(sys.path), OUTPUT_DIR=str(tmp_path / "out"),
                ARR_COC_THREADS="1", TERM="xterm")


def test_a_terminal_gets_a_bar_with_step_loss_and_eta(tmp_path):
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # rows, columns
    proc = subprocess.Popen([sys.executable, *ARGS], stdin=terminal, stdout=terminal, stderr=terminal,
                            env=_env(tmp_path), close_fds=True)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=300) == 0, seen[-2000:]
    text = seen.decode(errors="replace")
    assert "train: 100%" in text and "3/3" in text and "loss=" in text and "<00:00" in text, text[-2000:]
    records = [json.loads(line[line.index("{"):]) for line in text.replace("\r", "\n").split("\n")
               if line.strip().startswith('{"step"')]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]


def test_a_pipe_gets_json_lines_only(tmp_path):
    done = subprocess.run([sys.executable, *ARGS], capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), lines
    assert [json.loads(line)["step"] for line in lines if "loss" in json.loads(line)] == [1, 2, 3]
    assert "train:" not in done.stderr
