"""tools/bazel hands the caller's environment to Bazel inherited, never as arguments.

A value on a command line is readable by every user through `ps` and
/proc/PID/cmdline; ARR_REGISTRY_PASSWORD must never be there. Two hops, each a
real process: tools/bazel starting `unshare` (its argv and environment are
recorded by an `unshare` that stands first on PATH), and enter.sh's last step
(passed_env.sh), which keeps only the variables tools/environment.txt passes.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

SECRET = "s3cret-value-for-cmdline-test"
WS = pathlib.Path.cwd()  # runfiles _main: the files below are data of this test
FILES = [".bazelversion", "tools/bazel", "tools/environment.txt", "tools/bazel-root/enter.sh",
         "tools/bazel-root/passed_env.sh", "tools/bazel-root/packages.txt", "tools/bazel-root/provision.sh"]


def passed_names() -> list[str]:
    out = subprocess.run(["bash", "-c", '. tools/bazel-root/passed_env.sh; passed_names tools/environment.txt'],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_declaration_passes_the_documented_settings():
    names = passed_names()
    for name in ("ARR_REGISTRY_USER", "ARR_REGISTRY_PASSWORD", "GOOGLE_CLOUD_PROJECT", "ARR_LAUNCH_STATE",
                 "WANDB_PROJECT", "DATASET_CACHE_DIR", "BASE_MODEL_REVISION", "ARR_SECRET_REFS", "HOME"):
        assert name in names
    assert "BUILD_WORKSPACE_DIRECTORY" not in names and "ARR_BAZEL_CACHE" not in names


def test_enter_keeps_only_passed_variables_and_puts_none_on_a_command_line(tmp_path):
    probe = tmp_path / "probe.json"
    script = ('. tools/bazel-root/passed_env.sh; mapfile -t passed < <(passed_names tools/environment.txt); '
              'keep_only_env "${passed[@]}"; exec "$0" -c "$1"')
    code = (f"import json, os; json.dump({{'cmdline': open('/proc/self/cmdline', 'rb').read().decode(), "
            f"'env': dict(os.environ)}}, open({str(probe)!r}, 'w'))")
    env = {"PATH": os.environ["PATH"], "HOME": "/home/u", "ARR_REGISTRY_PASSWORD": SECRET, "SEED": "3",
           "NOT_DECLARED": "x", "BUILD_WORKSPACE_DIRECTORY": "/elsewhere"}
    subprocess.run(["bash", "-c", script, sys.executable, code], env=env, check=True)
    seen = json.loads(probe.read_text())
    assert seen["env"]["ARR_REGISTRY_PASSWORD"] == SECRET and seen["env"]["SEED"] == "3"
    assert "NOT_DECLARED" not in seen["env"] and "BUILD_WORKSPACE_DIRECTORY" not in seen["env"]
    assert "PATH" not in seen["env"]  # enter.sh sets the root's own PATH after this step
    assert SECRET not in seen["cmdline"]


@pytest.fixture
def workspace(tmp_path):
    """The files tools/bazel reads, copied as plain files, and a root it takes as provisioned."""
    ws = tmp_path / "ws"
    for name in FILES:
        (ws / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(WS / name, ws / name)
    (ws / "tools/bazel-root/stub_modules").mkdir()
    python = os.path.realpath(sys.executable)
    key = subprocess.run(["bash", "-c", f'ws={ws}; eval "$(sed -n "/^root_key() {{/,/^}}/p" {ws}/tools/bazel)"; '
                          f'root_key {python}'], capture_output=True, text=True, check=True).stdout.strip()
    cache = tmp_path / "cache"
    (cache / f"root-{key}").mkdir(parents=True)
    (cache / f"root-{key}" / ".arr-provisioned").touch()
    return ws, cache


def test_tools_bazel_starts_its_root_without_values_on_the_command_line(tmp_path, workspace):
    if os.geteuid() != 0 or not os.path.exists("/etc/debian_version"):
        pytest.fail("tools/bazel enters its root only as root on Debian; this test runs where `tools/bazel test` does")
    ws, cache = workspace
    fake_bin, record = tmp_path / "bin", tmp_path / "unshare.json"
    fake_bin.mkdir()
    unshare = fake_bin / "unshare"
    unshare.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                       f"json.dump({{'argv': sys.argv, 'cmdline': open('/proc/self/cmdline', 'rb').read().decode(), "
                       f"'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n")
    unshare.chmod(0o755)
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "HOME": str(tmp_path), "ARR_BAZEL_CACHE": str(cache),
           "ARR_PYTHON311": sys.executable, "ARR_BAZEL_FORCE_ROOT": "1", "ARR_REGISTRY_PASSWORD": SECRET,
           "LEARNING_RATE": "0.25"}
    done = subprocess.run([str(ws / "tools/bazel"), "run", "//x:y"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(record.read_text())
    assert seen["argv"][-2:] == ["run", "//x:y"] and seen["argv"][1:3] == ["--mount", "--propagation"]
    assert SECRET not in seen["cmdline"] and "0.25" not in seen["cmdline"]
    assert seen["env"]["ARR_REGISTRY_PASSWORD"] == SECRET  # inherited: enter.sh filters it


def test_a_python_under_usr_only_gets_the_exact_command_that_works(tmp_path, workspace):
    """Debian's /usr/bin/python3.11 cannot run inside the root: the error says what to run instead."""
    ws, cache = workspace
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python3.11").symlink_to(os.path.realpath(shutil.which("python3") or "/usr/bin/python3"))
    assert os.path.realpath(fake_bin / "python3.11").startswith("/usr/")
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "HOME": str(tmp_path), "ARR_BAZEL_CACHE": str(cache),
           "ARR_BAZEL_FORCE_ROOT": "1"}
    done = subprocess.run([str(ws / "tools/bazel"), "version"], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "cannot run inside the Bazel root" in done.stderr
    assert "curl -LsSf https://astral.sh/uv/install.sh | sh && ~/.local/bin/uv python install 3.11" in done.stderr
