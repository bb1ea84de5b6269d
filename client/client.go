package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Credentials is the credentials.json file `dollr serve` writes into its data
// directory.
type Credentials struct {
	MerchantID      json.Number `json:"merchant_id"`
	ClientID        string      `json:"client_id"`
	ClientSecret    string      `json:"client_secret"`
	BaseURL         string      `json:"base_url"`
	SupabaseURL     string      `json:"supabase_url"`
	SupabaseAnonKey string      `json:"supabase_anon_key"`
}

// LoadCredentials reads a credentials.json file.
func LoadCredentials(path string) (*Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.BaseURL == "" || c.ClientID == "" || c.ClientSecret == "" {
		return nil, fmt.Errorf("%s: base_url, client_id and client_secret are required", path)
	}
	return &c, nil
}

// Config configures a Client. BaseURL, ClientID and ClientSecret are required;
// SupabaseURL and SupabaseAnonKey enable the realtime half of WaitForCollection.
type Config struct {
	BaseURL         string // e.g. http://127.0.0.1:8080 (no /v1)
	ClientID        string
	ClientSecret    string
	SupabaseURL     string
	SupabaseAnonKey string
	// HTTPClient defaults to a client with a 30 s timeout (the guide's sample).
	HTTPClient *http.Client
	// UserAgent is sent on every request; default "dollr-go".
	UserAgent string
}

// Client calls the Dollr Open API. It is safe for concurrent use; share one
// per process so the bearer token is shared too (Dollr's rate-limit guidance).
type Client struct {
	cfg  Config
	http *http.Client
	now  func() time.Time // replaced in tests to age the token

	mu       sync.Mutex
	token    string
	expiry   time.Time
	lifetime time.Duration
	flight   *tokenFlight
}

// tokenFlight is one token request that concurrent callers wait on.
type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" || cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("client: BaseURL, ClientID and ClientSecret are required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: invalid BaseURL %q", cfg.BaseURL)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.UserAgent == "" {
		cfg.UserAgent = "dollr-go"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{cfg: cfg, http: hc, now: time.Now}, nil
}

// NewFromCredentials returns a Client for a credentials.json's values.
func NewFromCredentials(c *Credentials) (*Client, error) {
	return New(Config{
		BaseURL:         c.BaseURL,
		ClientID:        c.ClientID,
		ClientSecret:    c.ClientSecret,
		SupabaseURL:     c.SupabaseURL,
		SupabaseAnonKey: c.SupabaseAnonKey,
	})
}

// NewFromCredentialsFile loads credentials.json and returns a Client for it.
func NewFromCredentialsFile(path string) (*Client, error) {
	c, err := LoadCredentials(path)
	if err != nil {
		return nil, err
	}
	return NewFromCredentials(c)
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// renewBefore is how long before expiry a cached token is replaced: Dollr's
// guide says to renew when fewer than 5 minutes remain. A token that lives
// less than 10 minutes is renewed at half its life instead, so short-lived
// tokens are not re-requested on every call.
func renewBefore(lifetime time.Duration) time.Duration {
	if lifetime < 10*time.Minute {
		return lifetime / 2
	}
	return 5 * time.Minute
}

// AccessToken returns a bearer token, from the cache while more than five
// minutes of it remain, otherwise from a new ObtainToken call. Concurrent
// callers share one request.
func (c *Client) AccessToken(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.token != "" && c.expiry.Sub(c.now()) >= renewBefore(c.lifetime) {
		tok := c.token
		c.mu.Unlock()
		return tok, nil
	}
	f := c.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		c.flight = f
		// The request is detached from the first caller's ctx so its
		// cancellation does not fail everyone waiting.
		go c.refresh(context.WithoutCancel(ctx), f)
	}
	c.mu.Unlock()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-f.done:
	}
	if f.err != nil {
		return "", f.err
	}
	return f.token, nil
}

func (c *Client) refresh(ctx context.Context, f *tokenFlight) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := c.now()
	res, err := c.ObtainToken(ctx)
	c.mu.Lock()
	if err == nil {
		c.token = res.AccessToken
		c.lifetime = time.Duration(res.ExpiresIn) * time.Minute
		c.expiry = start.Add(c.lifetime)
		f.token = res.AccessToken
	}
	f.err = err
	c.flight = nil
	c.mu.Unlock()
	close(f.done)
}

// invalidate drops tok from the cache after the server refused it, unless a
// newer token already replaced it.
func (c *Client) invalidate(tok string) {
	c.mu.Lock()
	if c.token == tok {
		c.token = ""
	}
	c.mu.Unlock()
}

// ObtainToken calls POST /v1/jwt/client/obtain/token with the client's
// credentials. Most callers want AccessToken, which caches.
func (c *Client) ObtainToken(ctx context.Context) (*TokenResponse, error) {
	var res TokenResponse
	body := map[string]string{"client_id": c.cfg.ClientID, "client_secret": c.cfg.ClientSecret}
	if err := c.do(ctx, http.MethodPost, "/v1/jwt/client/obtain/token", nil, body, &res, false); err != nil {
		return nil, err
	}
	if res.AccessToken == "" {
		return nil, errors.New("dollr: token response has no access_token")
	}
	return &res, nil
}

// do sends one request and decodes a 2xx JSON body into out. With auth, it
// sends the cached bearer token and, on a 401, renews the token and retries
// once, as Dollr's guide prescribes.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, auth bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	u := c.cfg.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	for attempt := 0; ; attempt++ {
		var tok string
		if auth {
			var err error
			if tok, err = c.AccessToken(ctx); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if body == nil {
			req.Body = nil
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.cfg.UserAgent)
		if auth {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("dollr: %s %s: reading response: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && auth && attempt == 0 {
			c.invalidate(tok)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return parseAPIError(method, path, resp.StatusCode, resp.Header, data)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("dollr: %s %s: decoding response: %w", method, path, err)
		}
		return nil
	}
}
