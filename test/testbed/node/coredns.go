// CoreDNS for the test bed's real node, with only the plugins its Corefile uses (node.ts): the upstream
// main package compiles every plugin CoreDNS ships, cloud DNS providers and their SDKs included, which
// more than doubles the cold build on 2 cores. Same coremain, same plugins, same order as upstream's
// generated directive list; built by build/go-components.sh against github.com/coredns/coredns at
// COREDNS_VERSION from the Go module proxy.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// upstream's order (core/dnsserver/zdirectives.go), restricted to the plugins above
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "cache", "kubernetes"}
}

func main() {
	coremain.Run()
}
