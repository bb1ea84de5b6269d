package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's profiler on its own listener until ctx ends and
// returns the address it listens on. It is off by default and refuses
// non-loopback addresses: profiles expose internals and cost CPU, so only
// someone on the machine may take them.
func servePprof(ctx context.Context, addr string, log *slog.Logger) (string, error) {
	ln, err := listenPprof(addr)
	if err != nil {
		return "", err
	}
	servePprofOn(ctx, ln, log)
	return ln.Addr().String(), nil
}

// checkPprofAddr refuses a --pprof-addr that is not host:port on loopback.
func checkPprofAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--pprof-addr %s: only a loopback address is allowed", addr)
	}
	return nil
}

// listenPprof checks addr and listens on it.
func listenPprof(addr string) (net.Listener, error) {
	if err := checkPprofAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	return ln, nil
}

// servePprofOn serves the profiler on ln until ctx ends, then closes it.
func servePprofOn(ctx context.Context, ln net.Listener, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	serveAside(ctx, ln, mux, "pprof", log)
}

// serveAside serves h on a listener of its own (the profiler, or /metrics
// with --metrics-addr) until ctx ends, then closes it.
func serveAside(ctx context.Context, ln net.Listener, h http.Handler, what string, log *slog.Logger) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info(what+" serving", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn(what+" stopped", "err", err)
		}
	}()
}
