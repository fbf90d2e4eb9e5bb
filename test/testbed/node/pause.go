// The pause program of the test bed's real node: PID 1 of every pod sandbox. It holds the pod's namespaces
// open, reaps the zombies of processes that share its PID namespace, and exits on SIGINT or SIGTERM.
// Written here because no image registry is reachable (the upstream pause image cannot be pulled); built
// static by build/go-components.sh and packed into a FROM-scratch image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
