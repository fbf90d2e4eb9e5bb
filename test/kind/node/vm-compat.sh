#!/bin/bash
# The node's first program, before kind's own entrypoint (/usr/local/bin/entrypoint, unchanged). It changes
# nothing on a machine where kind runs as designed: each fix below is applied only when its check finds the
# problem, and says so on the node's log (`docker logs <node>`). Why each exists: docs/kind.md.
set -u
say() { echo "INFO: vm-compat: $*" >&2; }

# 1. cgroup v1 mounted read-only. A node started with --privileged gets writable cgroup mounts; one started
#    by test/kind/docker-wrapper.sh (a daemon that cannot grant every capability) gets them read-only, and
#    kind's entrypoint then fails to create the kubelet's cgroups. A bind remount makes them writable.
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  for m in /sys/fs/cgroup/*/; do
    m=${m%/}
    [ -L "$m" ] && continue
    if findmnt -no OPTIONS "$m" 2>/dev/null | grep -qE '(^|,)ro(,|$)'; then
      mount -o remount,bind,rw "$m" && say "remounted $m read-write"
    fi
  done
fi

# 2. No negative oom_score_adj (the container lacks CAP_SYS_RESOURCE). containerd's unit asks for -999 and
#    runc for -998 on every pod sandbox: both fail. Then containerd's unit keeps its inherited score and
#    containerd clamps what runc sets (restrict_oom_score_adj, what kind itself does for rootless nodes).
if ! (echo -999 > /proc/self/oom_score_adj) 2>/dev/null; then
  say "negative oom_score_adj is refused here: containerd gets restrict_oom_score_adj and no OOMScoreAdjust"
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml
  mkdir -p /etc/systemd/system/containerd.service.d
  printf '[Service]\nOOMScoreAdjust=\n' > /etc/systemd/system/containerd.service.d/20-vm-compat.conf
else
  rm -f /etc/systemd/system/containerd.service.d/20-vm-compat.conf
fi

exec /usr/local/bin/entrypoint "$@"
