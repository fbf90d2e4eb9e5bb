// CoreDNS for the kind node image (test/kind/node-image.sh), with the plugins the Corefile kubeadm writes
// uses (errors, health, ready, kubernetes, prometheus, forward, cache, loop, reload, loadbalance) plus log:
// upstream's main package compiles every plugin CoreDNS ships, cloud DNS providers and their SDKs
// included, which more than doubles the cold build on 2 cores. Same coremain, same order as upstream's
// generated directive list; built against github.com/coredns/coredns at COREDNS_VERSION.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	// upstream's order (core/dnsserver/zdirectives.go), restricted to the plugins above
	dnsserver.Directives = []string{
		"reload", "ready", "health", "prometheus", "errors", "log", "loadbalance", "cache", "kubernetes",
		"loop", "forward",
	}
}

func main() {
	coremain.Run()
}
