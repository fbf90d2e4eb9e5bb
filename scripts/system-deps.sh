#!/usr/bin/env bash
# Run by `make test`, `make demo` and .ci/run: the machine packages the test bed needs, from
# Debian's archive, installed when missing. Idempotent and quick when everything is there (dpkg -s only).
#   docker.io          the container engine that builds the images (and runs kind and testcontainers)
#   containerd, runc   the real node's container runtime (the test bed runs its own containerd instance)
#   containernetworking-plugins   bridge, host-local, portmap, loopback for the real node's pods
#   debootstrap        the Debian base image the project's images are built on (no image registry here)
#   iptables, conntrack, ethtool, socat   kube-proxy and the kubelet
#   libkrb5-dev, gcc   sparkmagic (a plain Livy client the gateway is tested with): its gssapi and krb5
#                      dependencies are compiled against Kerberos when installed from PyPI
# Set LIVY_SYSTEM_DEPS_SKIP=1 on a machine that provides them some other way.
set -euo pipefail
LIVY_SYSTEM_PACKAGES=${LIVY_SYSTEM_PACKAGES:-"docker.io containerd runc containernetworking-plugins debootstrap iptables conntrack ethtool socat libkrb5-dev gcc"}

_missing=()
for _p in $LIVY_SYSTEM_PACKAGES; do
  dpkg-query -W -f='${Status}' "$_p" 2>/dev/null | grep -q 'install ok installed' || _missing+=("$_p")
done
if [ "${LIVY_SYSTEM_DEPS_SKIP:-}" != "1" ] && [ ${#_missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${_missing[*]}" >&2
  _sudo=""
  [ "$(id -u)" -eq 0 ] || _sudo="sudo -n"
  # no service may start during the install (no init system here; the test bed starts what it needs)
  _policy=/usr/sbin/policy-rc.d
  _own_policy=0
  if [ ! -e "$_policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $_sudo tee "$_policy" >/dev/null && $_sudo chmod +x "$_policy" && _own_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  { $_sudo apt-get update -qq && $_sudo apt-get install -y -qq --no-install-recommends "${_missing[@]}" >/dev/null; } ||
    { echo "[setup] FAILED: apt-get install ${_missing[*]}" >&2; [ $_own_policy = 1 ] && $_sudo rm -f "$_policy"; exit 1; }
  [ $_own_policy = 1 ] && $_sudo rm -f "$_policy"
fi
unset _missing _p _sudo _policy _own_policy
