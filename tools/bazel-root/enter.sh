#!/usr/bin/env bash
# Runs inside a private mount namespace (tools/bazel starts it with unshare):
# mounts what Bazel needs into the root, pivots into it and execs Bazel.
#
# pivot_root, not chroot: in a chroot the kernel refuses user namespaces, and
# Bazel's linux-sandbox then silently falls back to a weaker sandbox.
# Paths that Bazel prints (workspace, output root) are mounted at the same
# absolute paths as on the host, so bazel-bin links resolve there too.
#
# Usage: enter.sh ROOT WORKSPACE OUTPUT_USER_ROOT CACHE CWD N VAR=VALUE... BAZEL_ARGS...
set -euo pipefail

root=$1 ws=$2 output_user_root=$3 cache=$4 cwd=$5 n_env=$6
shift 6
passed_env=("${@:1:$n_env}")
shift "$n_env"

get_passed() {
  local kv
  for kv in "${passed_env[@]}"; do
    [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return 0; }
  done
  return 1
}

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

home=$(get_passed HOME || echo /root)
# pip's download cache outlives output bases: fresh clones reuse the wheels.
mkdir -p "$root$home/.cache/pip"
mount --bind "$cache/pip" "$root$home/.cache/pip"

# Credentials the launcher may need, read-only and only when the caller has them.
if creds=$(get_passed GOOGLE_APPLICATION_CREDENTIALS) && [ -f "$creds" ]; then
  bind_same "$creds" ro
fi
gcloud_dir=$(get_passed CLOUDSDK_CONFIG || echo "$home/.config/gcloud")
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

exec /usr/bin/env -i \
  PATH=/opt/arr-python/bin:/usr/local/bin:/usr/bin:/bin \
  LANG=C.UTF-8 HOME="$home" "${passed_env[@]}" \
  /usr/bin/bazel "$@"
