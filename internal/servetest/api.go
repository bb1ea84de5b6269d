package servetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// API calls the Dollr Open API as one merchant: with its bearer token once
// Login (or the test) has set Token.
type API struct {
	BaseURL string
	Token   string
	t       testing.TB
}

// NewAPI returns a caller of the API at baseURL, without a token yet.
func NewAPI(t testing.TB, baseURL string) *API { return &API{BaseURL: baseURL, t: t} }

// Login obtains a bearer token for the client credentials, keeps it for
// later calls and returns its lifetime in seconds.
func (a *API) Login(clientID, clientSecret string) (expiresIn int) {
	a.t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	a.Call("POST", "/v1/jwt/client/obtain/token", map[string]string{"client_id": clientID, "client_secret": clientSecret}, http.StatusOK, &tok)
	a.Token = tok.AccessToken
	return tok.ExpiresIn
}

// Call sends body (if not nil) as JSON and decodes the answer into out (if
// not nil). It fails the test unless the status is wantStatus.
func (a *API) Call(method, path string, body any, wantStatus int, out any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatalf("%s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.BaseURL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		a.t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// WaitFor polls cond every 50ms until it returns nil, and fails the test
// with cond's last error once timeout has passed.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
