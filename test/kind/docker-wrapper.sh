#!/bin/sh
# `docker` for kind only, put first on kind's PATH by test/kind/kind.ts when (and only when) this machine's
# Docker daemon cannot start a --privileged container: a daemon without CAP_SYS_RESOURCE (a VM or a
# container that withholds it) fails every `docker run --privileged` with "unable to apply caps: operation
# not permitted", because --privileged asks for every capability. It turns kind's `run --privileged` into
# all capabilities but that one, plus what --privileged also gives a kind node: unmasked /proc and /sys,
# every device (cgroup rule) and /dev/kmsg. The node's vm-compat.sh fixes what this leaves read-only.
# `exec --privileged` loses --privileged. Every other command goes to the real docker unchanged.
real=${LIVY_KIND_REAL_DOCKER:?LIVY_KIND_REAL_DOCKER names the real docker CLI}
case "${1:-}" in
run)
  shift
  for a in "$@"; do
    shift
    if [ "$a" = --privileged ]; then
      set -- "$@" --cap-add=ALL --cap-drop=SYS_RESOURCE --security-opt systempaths=unconfined \
        --device-cgroup-rule "a *:* rwm" --device /dev/kmsg
    else
      set -- "$@" "$a"
    fi
  done
  exec "$real" run "$@"
  ;;
exec)
  # `exec --privileged` asks for every capability too; without it the command gets the node's own
  shift
  for a in "$@"; do
    shift
    [ "$a" = --privileged ] || set -- "$@" "$a"
  done
  exec "$real" exec "$@"
  ;;
esac
exec "$real" "$@"
