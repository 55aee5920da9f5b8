#!/usr/bin/env bash
# Builds the Debian sid root filesystem that tools/bazel runs Bazel in.
#
# Why a root: Debian 12 has no usable Bazel; sid's bazel-bootstrap 7.7.1 is a
# full Bazel with offline modules, but installing it on the host would upgrade
# libc. So it lives in its own root, built once and cached (docs/bazel.md).
#
# Usage: provision.sh FINAL_DIR PYTHON_EXE
# The root is built in FINAL_DIR.partial and renamed only when complete, so a
# half-built root is never used. The caller holds the provisioning lock.
set -euo pipefail

final_dir=$1
python_exe=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
partial="$final_dir.partial"
log_dir="$(dirname "$final_dir")/logs"
mkdir -p "$log_dir"
log="$log_dir/provision-$(date -u +%Y%m%dT%H%M%SZ).log"

die() { echo "tools/bazel: $*" >&2; exit 1; }
step() { echo "tools/bazel: $*" >&2; }

# Runs a command, sending its output to the log; on failure names the log.
logged() {
  local what=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    if grep -q -i "no space left on device" "$log"; then
      die "$what failed: the disk is full (df -h $(dirname "$final_dir")). Free space and retry. Log: $log"
    fi
    die "$what failed. Full log: $log"
  fi
}

# The first deb822 or one-line mirror URI of the host's apt configuration.
host_mirror() {
  if [ -n "${ARR_DEBIAN_MIRROR:-}" ]; then echo "$ARR_DEBIAN_MIRROR"; return; fi
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
    case "$uri" in *security*|"") continue ;; esac
    echo "$uri"; return
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  return 1
}

# Runs a command inside the partial root with /proc, /dev and the host python mounted.
in_root() {
  unshare --mount --propagation private -- bash -c '
    set -e
    root=$1; py_prefix=$2; shift 2
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mkdir -p "$root$py_prefix"
    mount --bind "$py_prefix" "$root$py_prefix"
    mount -o remount,bind,ro "$root$py_prefix"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"
  ' in_root "$partial" "$python_prefix" "$@"
}

packages() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | grep -v '^$'; }

check_host() {
  [ "$(id -u)" = 0 ] || die "the first run must be as root: it builds a Debian root filesystem with debootstrap (later runs work as any user). Run: sudo tools/bazel version"
  command -v debootstrap >/dev/null || die "debootstrap is missing. Install it: apt-get install debootstrap"
  command -v unshare >/dev/null || die "unshare (util-linux) is missing. Install it: apt-get install util-linux"
  local free_kb
  free_kb=$(df -Pk "$(dirname "$final_dir")" | awk 'NR == 2 {print $4}')
  [ "$free_kb" -gt $((4 * 1024 * 1024)) ] || die "less than 4 GB free under $(dirname "$final_dir"): the Bazel root needs about 2 GB, and each output base about 8 GB more"
}

python_prefix=$("$python_exe" -c 'import sys; print(sys.base_prefix)')
case "$python_prefix" in
  /usr|/usr/*|/) die "python3.11 at $python_exe lives under $python_prefix, which cannot be mounted over the root's /usr. Use a self-contained Python 3.11 (pyenv, uv python install 3.11, or python.org build) and set ARR_PYTHON311=/path/to/python3.11" ;;
esac

check_host
mirror=$(host_mirror) || die "no Debian mirror found in the host's apt configuration (/etc/apt/sources.list*); set ARR_DEBIAN_MIRROR=URL"
rm -rf "$partial"
mkdir -p "$partial"
step "building the Bazel root (once): debootstrap sid from $mirror; log: $log"
logged "debootstrap" debootstrap --variant=minbase sid "$partial" "$mirror"
# sid's Release may be dated after the VM clock; apt must not refuse it.
echo 'Acquire::Check-Valid-Until "false";' > "$partial/etc/apt/apt.conf.d/90arr-valid-until"
# Services in the packages (docker-registry) must not start during install.
printf '#!/bin/sh\nexit 101\n' > "$partial/usr/sbin/policy-rc.d"
chmod 0755 "$partial/usr/sbin/policy-rc.d"
# Downloads here may pass a TLS-re-signing proxy: trust what the host trusts.
mkdir -p "$partial/usr/local/share/ca-certificates"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$partial/usr/local/share/ca-certificates/"
fi
cp /etc/resolv.conf "$partial/etc/resolv.conf" 2>/dev/null || true

step "installing $(packages | tr '\n' ' ')"
logged "apt-get update" in_root apt-get update
bazel_pin=$(packages | awk -F= '$1 == "bazel-bootstrap" {print $2}')
if ! in_root apt-cache madison bazel-bootstrap 2>>"$log" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -q "^${bazel_pin%\*}"; then
  die "sid no longer offers bazel-bootstrap $bazel_pin (it has: $(in_root apt-cache madison bazel-bootstrap 2>/dev/null | awk -F'|' '{print $2}' | tr -d ' ' | tr '\n' ' ')). Use a snapshot mirror (ARR_DEBIAN_MIRROR=https://snapshot.debian.org/archive/debian/<date>/) or update tools/bazel-root/packages.txt and .bazelversion together."
fi
# shellcheck disable=SC2046
logged "apt-get install" in_root apt-get install -y --no-install-recommends $(packages)
logged "update-ca-certificates" in_root update-ca-certificates
logged "apt-get clean" in_root apt-get clean
rm -rf "$partial/var/lib/apt/lists/"*

step "adding stub modules and the system bazelrc"
cp -r "$here/stub_modules" "$partial/opt/arr-bazel-stubs"
{
  echo
  echo "# Added by tools/bazel: bazel_tools names these modules; Debian does not ship them."
  for stub in "$here"/stub_modules/*/; do
    name=$(basename "$stub")
    echo "common --override_module=$name=/opt/arr-bazel-stubs/$name"
  done
  echo "# Machine-specific caches stay here, not in the project's .bazelrc."
  echo "common --disk_cache=$(dirname "$final_dir")/disk_cache"
  echo "common --experimental_disk_cache_gc_max_size=${ARR_BAZEL_DISK_CACHE_MAX:-20G}"
  echo "common --experimental_disk_cache_gc_max_age=14d"
} >> "$partial/etc/bazel/bazelrc"

step "creating the Python 3.11 venv over $python_prefix"
logged "python3.11 venv" in_root "$python_exe" -m venv --without-pip /opt/arr-python
logged "python3.11 check" in_root /opt/arr-python/bin/python3.11 -c \
  'import sys, ssl, sqlite3, ctypes, lzma, bz2, zlib; assert sys.version_info[:2] == (3, 11), sys.version'
echo "$python_prefix" > "$partial/etc/arr-python-prefix"
rm -f "$partial/etc/resolv.conf" && touch "$partial/etc/resolv.conf"

touch "$partial/.arr-provisioned"
rm -rf "$final_dir"
mv "$partial" "$final_dir"
step "Bazel root ready: $final_dir"
