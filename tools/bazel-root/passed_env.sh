# Sourced by tools/bazel-root/enter.sh: which of the caller's variables a Bazel
# client in the root (and so every `bazel run` binary) gets.
#
# The values travel in the inherited environment, never as arguments, so a
# password (ARR_REGISTRY_PASSWORD) never shows in `ps` or /proc/PID/cmdline.

# The names of kind `passed` in DECLARATION (tools/environment.txt), one a line.
passed_names() {
  local name kind _
  while read -r name kind _; do
    case "$name" in '' | '#'*) continue ;; esac
    [ "$kind" = passed ] && echo "$name"
  done < "$1"
  return 0
}

# Unexports every variable except the NAMEs given. Bash re-sets a few of its
# own (SHLVL, and SHELLOPTS when the caller exported it); they carry no values.
keep_only_env() {
  local keep=" $* " name
  for name in $(compgen -e); do
    case "$keep" in *" $name "*) ;; *) unset "$name" 2>/dev/null || true ;; esac
  done
}
