#!/usr/bin/env bash
# Runs inside a private mount namespace (tools/bazel starts it with unshare):
# mounts what Bazel needs into the root, pivots into it and execs Bazel.
#
# pivot_root, not chroot: in a chroot the kernel refuses user namespaces, and
# Bazel's linux-sandbox then silently falls back to a weaker sandbox.
# Paths that Bazel prints (workspace, output root) are mounted at the same
# absolute paths as on the host, so bazel-bin links resolve there too.
#
# The caller's environment arrives inherited, never as arguments (a password
# would show in `ps`); only the variables tools/environment.txt declares
# `passed` reach Bazel (tools/bazel-root/passed_env.sh).
#
# Usage: enter.sh ROOT WORKSPACE OUTPUT_USER_ROOT CACHE CWD BAZEL_ARGS...
set -euo pipefail

root=$1 ws=$2 output_user_root=$3 cache=$4 cwd=$5
shift 5
# shellcheck source=tools/bazel-root/passed_env.sh
. "$ws/tools/bazel-root/passed_env.sh"
mapfile -t passed < <(passed_names "$ws/tools/environment.txt")

# Binds a host path at the same path inside the root; $3 = ro for read-only.
bind_same() {
  local src=$1 dst="$root$1" mode=${2:-rw}
  if [ -d "$src" ]; then mkdir -p "$dst"; else mkdir -p "$(dirname "$dst")"; touch "$dst"; fi
  mount --bind "$src" "$dst"
  [ "$mode" = ro ] && mount -o remount,bind,ro "$dst"
  return 0
}

mount --bind "$root" "$root"
mount -t proc proc "$root/proc" 2>/dev/null || mount --rbind /proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
[ -e /etc/resolv.conf ] && mount --bind /etc/resolv.conf "$root/etc/resolv.conf"

bind_same "$ws"
bind_same "$output_user_root"
bind_same "$cache/disk_cache"
bind_same "$(cat "$root/etc/arr-python-prefix")" ro

home=${HOME:-/root}
# pip's download cache outlives output bases: fresh clones reuse the wheels.
mkdir -p "$root$home/.cache/pip"
mount --bind "$cache/pip" "$root$home/.cache/pip"

# Credentials the launcher may need, read-only and only when the caller has them.
creds=${GOOGLE_APPLICATION_CREDENTIALS:-}
if [ -n "$creds" ] && [ -f "$creds" ]; then
  bind_same "$creds" ro
fi
gcloud_dir=${CLOUDSDK_CONFIG:-$home/.config/gcloud}
[ -d "$gcloud_dir" ] && bind_same "$gcloud_dir" ro

# Every Bazel client in the root, including one that a `bazel run` binary starts
# (the launcher builds the image that way), must find this output root.
# Debian's system bazelrc try-imports this file.
printf 'startup --output_user_root=%s\n' "$output_user_root" > "$root/etc/bazel.bazelrc.$$"
mv "$root/etc/bazel.bazelrc.$$" "$root/etc/bazel.bazelrc"

cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
cd "$cwd"

keep_only_env "${passed[@]}"
export PATH=/opt/arr-python/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME="$home"
exec /usr/bin/bazel "$@"
