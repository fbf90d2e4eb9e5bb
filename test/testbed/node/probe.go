// probe: the test bed's own test image for the real node (no registry here to pull one from). One static
// binary, FROM scratch:
//
//	probe serve ADDR           answers GET with "hello from <hostname>", logs one line per request
//	probe get URL [TOKEN CA]   GET (https with a bearer token file and a CA file), prints status and body
//	probe lookup NAME          resolves NAME with the pod's /etc/resolv.conf, prints the addresses
//	probe cat FILE             prints FILE
//	probe sleep                waits for SIGTERM (a pod to exec into)
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe serve ADDR | get URL [TOKEN_FILE CA_FILE] | lookup NAME | cat FILE | sleep")
	}
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
			fmt.Fprintf(w, "hello from %s\n", host)
		})
		fmt.Printf("serving on %s\n", os.Args[2])
		if err := http.ListenAndServe(os.Args[2], nil); err != nil {
			fail("serve: %v", err)
		}
	case "get":
		client := &http.Client{Timeout: 10 * time.Second}
		req, err := http.NewRequest("GET", os.Args[2], nil)
		if err != nil {
			fail("get: %v", err)
		}
		if len(os.Args) >= 5 {
			token, err := os.ReadFile(os.Args[3])
			if err != nil {
				fail("get: %v", err)
			}
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			ca, err := os.ReadFile(os.Args[4])
			if err != nil {
				fail("get: %v", err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		}
		res, err := client.Do(req)
		if err != nil {
			fail("get: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		fmt.Printf("%d\n%s", res.StatusCode, body)
	case "lookup":
		addrs, err := net.LookupHost(os.Args[2])
		if err != nil {
			fail("lookup: %v", err)
		}
		fmt.Println(strings.Join(addrs, " "))
	case "cat":
		data, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail("cat: %v", err)
		}
		os.Stdout.Write(data)
	case "sleep":
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		<-sigs
	default:
		fail("unknown command %q", os.Args[1])
	}
}
