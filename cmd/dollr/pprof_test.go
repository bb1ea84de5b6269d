package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestServePprof(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr, err := servePprof(ctx, "127.0.0.1:0", quiet)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof answered %d: %.200s", resp.StatusCode, body)
	}
	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:0", "nonsense"} {
		if _, err := servePprof(ctx, bad, quiet); err == nil {
			t.Errorf("servePprof(%q) accepted a non-loopback address", bad)
		}
	}
}
