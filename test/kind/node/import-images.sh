#!/bin/bash
# Imports the images this node image carries (/kind/images/*.tar, `docker save` archives of the control
# plane, kube-proxy, CoreDNS, pause) into containerd's k8s.io namespace before the kubelet starts: the node
# image is assembled without running containerd (kind build node-image preloads by running one, which needs
# a registry here). Once per node: a marker in /var (a volume kind keeps across node restarts).
set -euo pipefail
marker=/var/lib/kind-images-imported
[ -f "$marker" ] && [ "$(cat "$marker")" = "$(cat /kind/images/KEY)" ] && exit 0
for i in $(seq 1 60); do ctr version >/dev/null 2>&1 && break; sleep 1; done
for t in /kind/images/*.tar; do
  ctr -n k8s.io images import "$t" >/dev/null
done
cat /kind/images/KEY > "$marker"
