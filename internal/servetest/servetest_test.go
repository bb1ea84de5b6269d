package servetest_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr/internal/servetest"
	"github.com/dollr/dollr/pgtest"
)

func TestMain(m *testing.M) { os.Exit(servetest.Main(m)) }

type credentials struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	BaseURL      string `json:"base_url"`
}

func readCredentials(t *testing.T, s *servetest.Server) credentials {
	t.Helper()
	b, err := os.ReadFile(s.CredentialsPath())
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStartKillRestartStop: a server answers on loopback with its
// credentials, a killed one comes back on the same data with the same
// merchant, and a graceful stop exits 0.
func TestStartKillRestartStop(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Flags: []string{"--log-format", "json"}})
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || strings.HasSuffix(s.URL, ":0") {
		t.Fatalf("URL %q", s.URL)
	}
	c := readCredentials(t, s)
	if c.BaseURL != s.URL {
		t.Fatalf("credentials base_url %q, server on %q", c.BaseURL, s.URL)
	}
	api := servetest.NewAPI(t, s.URL)
	if ttl := api.Login(c.ClientID, c.ClientSecret); ttl <= 0 || api.Token == "" {
		t.Fatalf("login: token %q, expires_in %d", api.Token, ttl)
	}
	api.Call("GET", "/v1/status/collection/00000000-0000-4000-8000-000000000000", nil, 404, nil)
	if code := s.Kill(); code == 0 {
		t.Fatalf("killed server exited 0")
	}

	again := servetest.Start(t, servetest.Options{DataDir: s.DataDir})
	if c2 := readCredentials(t, again); c2.ClientSecret != c.ClientSecret || c2.BaseURL != again.URL {
		t.Fatalf("restart credentials %+v, first %+v", c2, c)
	}
	api.BaseURL = again.URL
	api.Call("GET", "/v1/status/collection/00000000-0000-4000-8000-000000000000", nil, 404, nil)
	if code := again.Stop(); code != 0 {
		t.Fatalf("graceful stop exit code %d:\n%s", code, again.Output())
	}
	if code := again.Stop(); code != 0 {
		t.Fatalf("second Stop exit code %d", code)
	}
}

// TestStartPostgres: a server keeps its state in the database it is given.
func TestStartPostgres(t *testing.T) {
	db := pgtest.NewDatabase(t)
	s := servetest.Start(t, servetest.Options{DatabaseURL: db})
	c := readCredentials(t, s)
	servetest.NewAPI(t, s.URL).Login(c.ClientID, c.ClientSecret)
	// Another data dir on the same database is the same installation: the
	// merchant is there, so its credentials work on the second server.
	other := servetest.Start(t, servetest.Options{DatabaseURL: db})
	servetest.NewAPI(t, other.URL).Login(c.ClientID, c.ClientSecret)
	if _, err := os.Stat(filepath.Join(s.DataDir, "dollr.db")); err == nil {
		t.Fatalf("SQLite file in the data dir of a PostgreSQL server")
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	servetest.WaitFor(t, time.Minute, func() error {
		if n++; n < 3 {
			return fmt.Errorf("only %d polls", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond ran %d times, want 3", n)
	}
}
