package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/token"
)

func init() {
	register("merchants", command{
		Summary: "manage merchants (tenants): merchants create --name NAME",
		Run:     runMerchants,
	})
}

// credentialsFile is written into the data directory on first start.
const credentialsFile = "credentials.json"

// anonKeySetting keeps the anon key stable across restarts.
const anonKeySetting = "supabase_anon_key"

// credentials is what a merchant needs to call the API and subscribe to
// realtime: <data-dir>/credentials.json and `dollr merchants create` output.
type credentials struct {
	MerchantID      int64  `json:"merchant_id"`
	ClientID        string `json:"client_id"`
	ClientSecret    string `json:"client_secret"`
	BaseURL         string `json:"base_url"`
	SupabaseURL     string `json:"supabase_url"`
	SupabaseAnonKey string `json:"supabase_anon_key"`
}

// merchantsUsage is `dollr merchants --help`.
const merchantsUsage = `Usage: dollr merchants create --name NAME [--data-dir DIR | --database-url URL]

Subcommands:
  create   create a merchant and print its credentials as JSON`

func runMerchants(ctx context.Context, args []string) int {
	if _, code := subcommandUsage("merchants", merchantsUsage, args, "create"); code >= 0 {
		return code
	}
	fs := newFlagSet("merchants create", "dollr merchants create --name NAME [--data-dir DIR | --database-url URL]", `
Creates a merchant in the store of an existing installation and prints its
credentials as JSON (the format of credentials.json). Works while
'dollr serve' runs on the same data directory. The client secret is shown
only here: the store keeps its SHA-256 hash.

With SQLite the data directory must already hold the server's store
(dollr.db, made by the first 'dollr serve'): a mistyped --data-dir is refused
rather than given a new, empty store no server reads.`)
	name := fs.String("name", "", "merchant name (required)")
	dataDir := fs.String("data-dir", envOr("DOLLR_DATA_DIR", "./dollr-data"), "data directory of 'dollr serve' (env DOLLR_DATA_DIR)")
	databaseURL := databaseURLFlag(fs, databaseURLUsage)
	if code := parseFlags(fs, args[1:]); code >= 0 {
		return code
	}
	if *name == "" {
		fmt.Fprintln(os.Stderr, "dollr merchants create: --name is required")
		return 2
	}
	store, err := openStore(ctx, storeConfig{DataDir: *dataDir, DatabaseURL: *databaseURL, Existing: true}, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr merchants create: %v\n", err)
		return 1
	}
	defer store.Close()
	tokens, err := token.Load(ctx, store)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr merchants create: %v\n", err)
		return 1
	}
	anon, err := anonKey(ctx, store, tokens)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr merchants create: %v\n", err)
		return 1
	}
	// The server's URL is in its credentials file; fall back to the default address.
	baseURL := "http://127.0.0.1:8080"
	if c, err := readCredentials(*dataDir); err == nil && c.BaseURL != "" {
		baseURL = c.BaseURL
	}
	c, err := createMerchant(ctx, store, *name, baseURL, anon)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr merchants create: %v\n", err)
		return 1
	}
	out, _ := json.MarshalIndent(c, "", "  ")
	fmt.Println(string(out))
	return 0
}

// anonKey returns the installation's anon key, minting and storing it once.
func anonKey(ctx context.Context, store dollr.Store, tokens *token.Tokens) (string, error) {
	fresh, err := tokens.AnonKey()
	if err != nil {
		return "", err
	}
	return store.Setting(ctx, anonKeySetting, fresh)
}

// createMerchant stores a merchant with fresh client credentials.
func createMerchant(ctx context.Context, store dollr.Store, name, baseURL, anon string) (credentials, error) {
	secret := "dollr_cs_" + randomHex(32)
	m := &dollr.Merchant{Name: name, ClientID: "dollr_ci_" + randomHex(16), ClientSecretHash: dollr.HashClientSecret(secret)}
	if err := store.CreateMerchant(ctx, m); err != nil {
		return credentials{}, err
	}
	return credentials{
		MerchantID: m.ID, ClientID: m.ClientID, ClientSecret: secret,
		BaseURL: baseURL, SupabaseURL: baseURL, SupabaseAnonKey: anon,
	}, nil
}

func readCredentials(dataDir string) (credentials, error) {
	var c credentials
	b, err := os.ReadFile(filepath.Join(dataDir, credentialsFile))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", credentialsFile, err)
	}
	return c, nil
}

// writeCredentials replaces the file atomically, readable by the owner only.
func writeCredentials(dataDir string, c credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dataDir, ".credentials-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dataDir, credentialsFile))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}
