package bench

import (
	"context"
	"net"
	"os"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		url         string
		allowRemote bool
		ok          bool
	}{
		{"http://127.0.0.1:8080", false, true},
		{"http://127.0.0.5:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://192.0.2.1:8080", false, false},
		{"https://pay.example.com", false, false},
		{"https://pay.example.com", true, true},
		{"ftp://127.0.0.1", false, false},
		{"127.0.0.1:8080", false, false},
	}
	for _, tt := range tests {
		_, err := CheckTarget(tt.url, tt.allowRemote)
		if (err == nil) != tt.ok {
			t.Errorf("CheckTarget(%q, %v) = %v, want ok=%v", tt.url, tt.allowRemote, err, tt.ok)
		}
	}
}

func TestCheckConns(t *testing.T) {
	if err := CheckConns(MaxConnsPerProcess+1, 0); err == nil {
		t.Fatal("more than MaxConnsPerProcess connections were allowed")
	}
	if err := CheckConns(MaxConnsPerProcess, 1<<30); err == nil {
		t.Fatal("more descriptors than the open-files limit were allowed")
	}
	if err := CheckConns(100, maxHTTPConns); err != nil {
		t.Fatalf("100 connections refused: %v", err)
	}
}

func TestPlannedConns(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want int
	}{
		{"checkout one socket each", Options{Scenario: "checkout", N: 5000, ChannelsPerConn: 1, Subscribe: true}, 5000},
		{"checkout baseline", Options{Scenario: "checkout", N: 5000, ChannelsPerConn: 1}, 0},
		{"changes K per row", Options{Scenario: "changes", N: 1000, Subscribers: 10, ChannelsPerConn: 100}, 100},
		{"changes never two channels of a row per socket", Options{Scenario: "changes", N: 10, Subscribers: 3, ChannelsPerConn: 50}, 3},
		{"polling witness multiplexed", Options{Scenario: "polling", N: 5000, Witness: true, ChannelsPerConn: 1}, 50},
		{"polling without witness", Options{Scenario: "polling", N: 5000, ChannelsPerConn: 1}, 0},
	}
	for _, tt := range tests {
		if got := plannedConns(tt.o); got != tt.want {
			t.Errorf("%s: plannedConns = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// Connections to a loopback listener come from every address in
// SourceAddrs in turn.
func TestDialerSpreadsSourceAddresses(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	target, err := CheckTarget("http://"+ln.Addr().String(), false)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDialer(target)
	accepted := make(chan string, 2*len(SourceAddrs))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	for range 2 * len(SourceAddrs) {
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	seen := map[string]int{}
	for range 2 * len(SourceAddrs) {
		seen[<-accepted]++
	}
	for _, a := range SourceAddrs {
		if seen[a] != 2 {
			t.Errorf("source %s used %d times, want 2 (all: %v)", a, seen[a], seen)
		}
	}
}

func TestDialerDefaultSourceForNonIPv4Loopback(t *testing.T) {
	for _, u := range []string{"http://[::1]:1", "https://pay.example.com"} {
		target, err := CheckTarget(u, true)
		if err != nil {
			t.Fatal(err)
		}
		if a := NewDialer(target).LocalAddr(); a != nil {
			t.Errorf("%s: source %v, want the default", u, a)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
