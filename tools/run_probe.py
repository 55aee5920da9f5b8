"""Reports what a `bazel run` binary sees, for the check of tools/bazel's allow-list.

Prints the environment variable names it was given and the two directories Bazel
sets, then exits with the status named in argv[1] (exit codes must pass through).
"""

import json
import os
import sys

print(json.dumps({
    "env": sorted(os.environ),
    "BUILD_WORKSPACE_DIRECTORY": os.environ.get("BUILD_WORKSPACE_DIRECTORY"),
    "BUILD_WORKING_DIRECTORY": os.environ.get("BUILD_WORKING_DIRECTORY"),
}))
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
