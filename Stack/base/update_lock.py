"""`tools/bazel run //Stack/base:debian_lock.update`: re-resolve the base's
Debian packages and rewrite debian.lock.json in the source tree."""

import sys

from tools.oci import deb_lock

if __name__ == "__main__":
    sys.exit(deb_lock.main(sys.argv[1:]))
