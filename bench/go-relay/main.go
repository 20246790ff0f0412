// A bare Go reverse proxy for bench/gateway.ts: the Go floor for a proxy that serves TLS.
//
// It relays every request to UP with the upstream's token (httputil.ReverseProxy over a
// keep-alive transport, as kubectl proxy does) and nothing else: no authentication, decision,
// evidence or masking. With PLAIN=1 it serves plain HTTP/1.1, as kubectl proxy does; otherwise
// TLS with Go's defaults (HTTP/2 and HTTP/1.1 by ALPN; Go's own cipher order, AES-128-GCM first).
// Built and started by the bench only when a Go toolchain is on PATH.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	up, err := url.Parse(os.Getenv("UP"))
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(os.Getenv("CA"))) {
		fail(fmt.Errorf("CA: no certificate"))
	}
	token := os.Getenv("UPTOKEN")
	proxy := httputil.NewSingleHostReverseProxy(up)
	proxy.Transport = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: "localhost"},
		MaxIdleConnsPerHost: 256,
		ForceAttemptHTTP2:   true,
	}
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		r.Header.Set("Authorization", "Bearer "+token)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	srv := &http.Server{Handler: proxy}
	plain := os.Getenv("PLAIN") != ""
	scheme := "https"
	if plain {
		scheme = "http"
	}
	fmt.Printf("relay listening on %s://%s\n", scheme, ln.Addr().String())
	if plain {
		err = srv.Serve(ln)
	} else {
		cert, cerr := tls.X509KeyPair([]byte(os.Getenv("CERT")), []byte(os.Getenv("KEY")))
		if cerr != nil {
			fail(cerr)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		err = srv.ServeTLS(ln, "", "")
	}
	fail(err)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-relay:", err)
	os.Exit(1)
}
