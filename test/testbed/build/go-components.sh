#!/usr/bin/env bash
# Builds the Go parts of the test bed from the Go module proxy, cached by version:
#   k8s   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (version stamped)
#   etcd  etcd server
#   kwok  kwok (fake kubelet) and its stage configs
#   helm  helm 3
#   node  kubelet, kube-proxy (the real node; same wrapper module and version stamp as k8s)
#   coredns  CoreDNS (the real node's cluster DNS)
#   netpol  sigs.k8s.io/kube-network-policies, the real node's NetworkPolicy enforcement (with node/netpol-nfqueue.go:
#         see why there); not in the default list: the tests that need it build it (cached) when they start
#   pause, probe  the real node's pause program and test program (test/testbed/node/*.go), keyed by source hash
#   kind  kind, kubeadm, crictl and a CoreDNS with kubeadm's Corefile plugins (test/kind/coredns.go), for the
#         kind node image (test/kind/node-image.sh); not in the default list: only TEST_CLUSTER=kind needs them
# Usage: go-components.sh [k8s|etcd|kwok|helm|node|coredns|pause|probe]...   (no argument: all). Idempotent; each
# component is built under a lock (flock), so concurrent builds wait for each other instead of racing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${LIVY_TESTBED_CACHE:-$HOME/.cache/livy-operator-testbed}
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$CACHE"

log() { printf '[testbed-build] %s\n' "$*" >&2; }
fail() { printf '[testbed-build] FAILED: %s\n' "$*" >&2; exit 1; }
command -v go >/dev/null || fail "go is not installed: the control plane, kwok and helm are built with Go >= 1.24 (set LIVY_TESTBED_SKIP=1 to skip the test bed)"

# The wrapper module: requires k8s.io/kubernetes and replaces every staging module with its published
# v0.MINOR.PATCH (k8s.io/kubernetes's own go.mod points them at ./staging, which `go get` cannot follow).
write_k8s_wrapper() {
  local w=$1 mod
  mod=$(cd /tmp && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$mod" ] || fail "k8s: cannot download k8s.io/kubernetes@v$K8S_VERSION from the Go module proxy"
  rm -rf "$w"; mkdir -p "$w"
  {
    echo "module livy-operator.testbed/k8s"
    echo "go 1.24.0"
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo "replace ("
    # every staging module k8s.io/X => ./staging/... becomes its published v0.MINOR.PATCH
    sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$mod" | while read -r m; do
      echo "  $m => $m v0.${K8S_VERSION#*.}"
    done
    echo ")"
  } > "$w/go.mod"
}

# the version stamp every k8s binary carries (kubectl version, Helm's kubeVersion, the node's kubeletVersion)
k8s_ldflags() {
  local minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$ld"
}

build_k8s() {
  local started=$SECONDS
  local out="$CACHE/k8s-v$K8S_VERSION"
  [ -f "$out/.complete" ] && { log "k8s v$K8S_VERSION cached at $out"; return; }
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v$K8S_VERSION (cold: 10-25 min)"
  local w="$CACHE/src/k8s-v$K8S_VERSION"
  write_k8s_wrapper "$w"
  local cmds="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl"
  (cd "$w" && for c in $cmds; do go get "$c@v$K8S_VERSION"; done) || fail "k8s: go get failed (see above)"
  mkdir -p "$out/bin"
  # one go build for all four: they share most packages, so they compile once
  (cd "$w" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/bin/" $cmds) || fail "k8s: go build failed (see above)"
  "$out/bin/kubectl" version --client | grep -q "v$K8S_VERSION" || fail "k8s: kubectl does not report v$K8S_VERSION"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "k8s v$K8S_VERSION built into $out/bin"
}

# kubelet and kube-proxy for the real node: a build of their own (so the control plane's cache entry stays
# valid), from the same wrapper module and ldflags; the Go module and build caches make it minutes once the
# control plane is built.
build_node() {
  local started=$SECONDS
  local out="$CACHE/k8s-node-v$K8S_VERSION"
  [ -f "$out/.complete" ] && { log "kubelet, kube-proxy v$K8S_VERSION cached at $out"; return; }
  log "building kubelet, kube-proxy v$K8S_VERSION (cold: a few minutes after the control plane)"
  local w="$CACHE/src/k8s-node-v$K8S_VERSION"
  write_k8s_wrapper "$w"
  local cmds="k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  (cd "$w" && for c in $cmds; do go get "$c@v$K8S_VERSION"; done) || fail "node: go get failed (see above)"
  mkdir -p "$out/bin"
  (cd "$w" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/bin/" $cmds) || fail "node: go build failed (see above)"
  "$out/bin/kubelet" --version | grep -q "v$K8S_VERSION" || fail "node: kubelet does not report v$K8S_VERSION"
  "$out/bin/kube-proxy" --version | grep -q "v$K8S_VERSION" || fail "node: kube-proxy does not report v$K8S_VERSION"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "kubelet, kube-proxy built into $out/bin"
}

# CoreDNS with only the plugins the node's Corefile uses (node/coredns.go: see why there), from a wrapper
# module requiring github.com/coredns/coredns at COREDNS_VERSION. Keyed by version and that file's hash.
build_coredns() {
  local started=$SECONDS hash
  hash=$(sha256sum "$here/../node/coredns.go" | cut -c1-12)
  local out="$CACHE/coredns-v$COREDNS_VERSION-$hash"
  [ -f "$out/.complete" ] && { log "coredns v$COREDNS_VERSION cached at $out"; return; }
  log "building coredns v$COREDNS_VERSION (kubernetes, cache, health, ready, errors, log; cold: a few minutes)"
  local w="$CACHE/src/coredns-v$COREDNS_VERSION-$hash"; rm -rf "$w"; mkdir -p "$w" "$out/bin"
  printf 'module livy-operator.testbed/coredns\ngo 1.24.0\n' > "$w/go.mod"
  cp "$here/../node/coredns.go" "$w/main.go"
  (cd "$w" && go get "github.com/coredns/coredns@v$COREDNS_VERSION") || fail "coredns: go get failed"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$out/bin/coredns" .) || fail "coredns: go build failed"
  "$out/bin/coredns" -version | grep -q "CoreDNS-$COREDNS_VERSION" || fail "coredns: binary does not report $COREDNS_VERSION"
  "$out/bin/coredns" -plugins | grep -qw kubernetes || fail "coredns: the kubernetes plugin is missing"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "coredns built into $out/bin"
}

# The real node's own programs (test/testbed/node/*.go): pause, which every pod sandbox runs, and probe, the
# test image's program. Static, each keyed by the hash of its source.
build_nodeprog() {
  local name=$1 src="$here/../node/$1.go" hash
  hash=$(sha256sum "$src" | cut -c1-12)
  local out="$CACHE/$name-$hash"
  [ -f "$out/.complete" ] && { log "$name $hash cached at $out"; return; }
  local w="$CACHE/src/$name-$hash"; rm -rf "$w"; mkdir -p "$w" "$out/bin"
  printf 'module livy-operator.testbed/%s\ngo 1.24.0\n' "$name" > "$w/go.mod"
  cp "$src" "$w/main.go"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$out/bin/$name" .) || fail "$name: go build failed"
  touch "$out/.complete"; log "$name built into $out/bin"
}
# kube-network-policies from the Go module proxy, its nftables `queue` expressions swapped for the xtables
# NFQUEUE target (node/netpol-nfqueue.go says why); keyed by version and that file's hash.
build_netpol() {
  local started=$SECONDS hash v=$KUBE_NETWORK_POLICIES_VERSION
  hash=$(sha256sum "$here/../node/netpol-nfqueue.go" | cut -c1-12)
  local out="$CACHE/kube-network-policies-v$v-$hash"
  [ -f "$out/.complete" ] && { log "kube-network-policies v$v cached at $out"; return; }
  log "building kube-network-policies v$v (cold: a few minutes)"
  local dir; dir=$(cd /tmp && go mod download -json "sigs.k8s.io/kube-network-policies@v$v" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir" ] || fail "netpol: cannot download sigs.k8s.io/kube-network-policies@v$v from the Go module proxy"
  local w="$CACHE/src/kube-network-policies-v$v-$hash"; rm -rf "$w"; mkdir -p "$(dirname "$w")"
  cp -r "$dir" "$w" && chmod -R u+w "$w"
  cp "$here/../node/netpol-nfqueue.go" "$w/pkg/networkpolicy/zz_netpol_nfqueue.go"
  perl -0pi -e 's/queue := &expr\.Queue\{Num: uint16\(c\.config\.QueueID\)\}\n\s*if c\.config\.FailOpen \{\n\s*queue\.Flag = expr\.QueueFlagBypass\n\s*\}/queue := nfqueueCompat(uint16(c.config.QueueID), c.config.FailOpen)/g' "$w/pkg/networkpolicy/controller.go"
  perl -0pi -e 's/&expr\.Queue\{Num: uint16\(n\.nfQueueID\), Flag: expr\.QueueFlagBypass\}/nfqueueCompat(uint16(n.nfQueueID), true)/g' "$w/pkg/networkpolicy/dnsagent.go"
  ! grep -rn 'expr\.Queue{' "$w/pkg" "$w/cmd" || fail "netpol: a native queue expression is left (v$v changed: update the substitutions)"
  mkdir -p "$out/bin"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$out/bin/kube-network-policies" ./cmd) || fail "netpol: go build failed"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "kube-network-policies built into $out/bin"
}
build_pause() { build_nodeprog pause; }
build_probe() { build_nodeprog probe; }

build_etcd() {
  local started=$SECONDS
  local out="$CACHE/etcd-v$ETCD_VERSION"
  [ -f "$out/.complete" ] && { log "etcd v$ETCD_VERSION cached at $out"; return; }
  log "building etcd v$ETCD_VERSION"
  local w="$CACHE/src/etcd-v$ETCD_VERSION"; rm -rf "$w"; mkdir -p "$w"
  printf 'module livy-operator.testbed/etcd\ngo 1.24.0\n' > "$w/go.mod"
  (cd "$w" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION") || fail "etcd: go get failed"
  mkdir -p "$out/bin"
  (cd "$w" && go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" go.etcd.io/etcd/server/v3) || fail "etcd: go build failed"
  "$out/bin/etcd" --version | grep -q "$ETCD_VERSION" || fail "etcd: binary does not report $ETCD_VERSION"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "etcd built into $out/bin"
}

build_kwok() {
  local started=$SECONDS
  local out="$CACHE/kwok-v$KWOK_VERSION"
  [ -f "$out/.complete" ] && { log "kwok v$KWOK_VERSION cached at $out"; return; }
  log "building kwok v$KWOK_VERSION"
  mkdir -p "$out/bin" "$out/stages"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" || fail "kwok: go install failed"
  local dir; dir=$(cd /tmp && go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  cp -r "$dir/kustomize/stage/." "$out/stages/" && chmod -R u+w "$out/stages"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "kwok built into $out/bin"
}

build_helm() {
  local started=$SECONDS
  local out="$CACHE/helm-v$HELM_VERSION"
  [ -f "$out/.complete" ] && { log "helm v$HELM_VERSION cached at $out"; return; }
  log "building helm v$HELM_VERSION"
  mkdir -p "$out/bin"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" || fail "helm: go install failed"
  "$out/bin/helm" version --short | grep -q "v$HELM_VERSION" || fail "helm: binary does not report v$HELM_VERSION"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "helm built into $out/bin"
}

# kind (its module's directory holds the node image's base files), kubeadm (same wrapper module and version
# stamp as the control plane: kubeadm checks the kubelet's version), crictl, CoreDNS with kubeadm's plugins
build_kind() {
  local started=$SECONDS hash
  hash=$(sha256sum "$here/../../kind/coredns.go" | cut -c1-12)
  local out="$CACHE/kind-v$KIND_VERSION-k8s-v$K8S_VERSION-$hash"
  [ -f "$out/.complete" ] && { log "kind v$KIND_VERSION, kubeadm, crictl, coredns cached at $out"; return; }
  log "building kind v$KIND_VERSION, kubeadm v$K8S_VERSION, crictl v$CRICTL_VERSION, coredns v$COREDNS_VERSION (cold: 10-20 min)"
  mkdir -p "$out/bin"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@v$KIND_VERSION" || fail "kind: go install failed"
  local dir; dir=$(cd /tmp && go mod download -json "sigs.k8s.io/kind@v$KIND_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$out/base-files"; cp -r "$dir/images/base/files" "$out/base-files" && chmod -R u+w "$out/base-files"
  GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION" || fail "crictl: go install failed"
  local w="$CACHE/src/kubeadm-v$K8S_VERSION"
  write_k8s_wrapper "$w"
  (cd "$w" && go get "k8s.io/kubernetes/cmd/kubeadm@v$K8S_VERSION" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/bin/" k8s.io/kubernetes/cmd/kubeadm) || fail "kubeadm: build failed"
  "$out/bin/kubeadm" version -o short | grep -q "v$K8S_VERSION" || fail "kubeadm does not report v$K8S_VERSION"
  w="$CACHE/src/kind-coredns-v$COREDNS_VERSION-$hash"; rm -rf "$w"; mkdir -p "$w"
  printf 'module livy-operator.testbed/kindcoredns\ngo 1.24.0\n' > "$w/go.mod"
  cp "$here/../../kind/coredns.go" "$w/main.go"
  (cd "$w" && go get "github.com/coredns/coredns@v$COREDNS_VERSION" && go build -trimpath -ldflags "-s -w" -o "$out/bin/coredns" .) || fail "coredns: build failed"
  "$out/bin/coredns" -plugins | grep -qw forward || fail "coredns: the forward plugin is missing"
  echo $((SECONDS - started)) > "$out/.build-seconds"; touch "$out/.complete"; log "kind tools built into $out/bin"
}

targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(etcd kwok helm pause probe coredns k8s node)
for t in "${targets[@]}"; do
  # one builder per component at a time, machine-wide: a second `testbed build` waits, then finds it cached
  ( flock 9; "build_$t" ) 9>"$CACHE/.lock-$t"
done
