#!/bin/bash
# The pod network of a single-node cluster without kindnetd (not published as a Go module: docs/kind.md):
# ptp + host-local over the cluster's podSubnet, read from the kubeadm config kind writes before `kubeadm
# init`, + portmap. Run before each kubelet start; writes only when the config changes.
set -euo pipefail
subnet=$(sed -n 's/^ *podSubnet: *"\{0,1\}\([0-9a-f.:\/]*\)"\{0,1\}.*/\1/p' /kind/kubeadm.conf 2>/dev/null | head -1)
subnet=${subnet:-10.244.0.0/16}
subnet=${subnet%%,*}
mkdir -p /etc/cni/net.d
conf=$(cat <<JSON
{
  "cniVersion": "0.4.0",
  "name": "kind-static",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "ipam": { "type": "host-local", "dataDir": "/run/cni-ipam-state", "ranges": [[{ "subnet": "$subnet" }]], "routes": [{ "dst": "0.0.0.0/0" }] },
      "mtu": 1500
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
)
[ "$(cat /etc/cni/net.d/10-kind-static.conflist 2>/dev/null)" = "$conf" ] || echo "$conf" > /etc/cni/net.d/10-kind-static.conflist
