"""The push progress bar shows on a terminal only: table-driven over real streams (a pty, a pipe)."""

import io
import os

import pytest

from tools.launch import registry


@pytest.fixture
def streams():
    """Real file objects: the slave end of a pseudo-terminal, a pipe, a regular buffer, a closed one."""
    master, slave = os.openpty()
    read_end, write_end = os.pipe()
    out = {
        "tty": os.fdopen(slave, "w"),
        "pipe": os.fdopen(write_end, "w"),
        "buffer": io.StringIO(),
        "closed": io.StringIO(),
        "no_isatty": object(),
    }
    out["closed"].close()
    yield out
    for name in ("tty", "pipe"):
        out[name].close()
    os.close(master)
    os.close(read_end)


@pytest.mark.parametrize(
    "requested,stream,term,expected",
    [
        (None, "tty", "xterm-256color", True),
        (None, "tty", None, True),  # `bazel run` clears TERM: still a terminal
        (None, "tty", "dumb", False),  # a terminal that cannot redraw a line
        (None, "pipe", "xterm", False),  # CI logs, `2>&1 | tee`
        (None, "buffer", "xterm", False),  # captured stderr
        (None, "closed", "xterm", False),
        (None, "no_isatty", "xterm", False),
        (False, "tty", "xterm", False),  # an explicit choice wins
        (True, "pipe", "xterm", True),
    ],
)
def test_show_progress(streams, requested, stream, term, expected):
    env = {} if term is None else {"TERM": term}
    assert registry.show_progress(requested, streams[stream], env) is expected


def test_bar_is_drawn_on_the_given_stream_only_when_enabled():
    shown, hidden = io.StringIO(), io.StringIO()
    for stream, enabled in ((shown, True), (hidden, False)):
        bar = registry._Progress(1000, enabled, stream)
        bar.add(1000)
        bar.close()
    assert "push" in shown.getvalue() and "100%" in shown.getvalue()
    assert hidden.getvalue() == ""
