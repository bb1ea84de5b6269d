package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr/internal/servetest"
)

// TestWatchAndPay builds the dollr binary, starts `dollr serve` and checks
// the exit codes and output of `dollr pay` and `dollr watch`.
func TestWatchAndPay(t *testing.T) {
	bin := servetest.Build(t)
	creds := servetest.Start(t, servetest.Options{Flags: []string{"--sandbox-delay", "2s", "--sandbox-long-delay", "30s"}}).CredentialsPath()

	// pay: run cmd with args and return its exit code and output.
	run := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout.String(), stderr.String()
		case errors.As(err, &ee):
			return ee.ExitCode(), stdout.String(), stderr.String()
		}
		t.Fatalf("dollr %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		return 0, "", ""
	}

	var completedRef, sessionID string
	t.Run("pay completes", func(t *testing.T) {
		code, out, errOut := run(t, "pay", "--credentials", creds)
		if code != exitCompleted || !strings.Contains(out, "COMPLETED") {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if strings.Contains(out, "\r") || strings.Contains(out, "\033[") {
			t.Errorf("spinner output into a pipe:\n%q", out)
		}
		// "(later: dollr watch <ref> --session-id <id>)" names the payment.
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "dollr watch "); i >= 0 {
				f := strings.Fields(strings.TrimSuffix(l[i:], ")"))
				if len(f) == 5 {
					completedRef, sessionID = f[2], f[4]
				}
			}
		}
		if completedRef == "" {
			t.Fatalf("no reference in:\n%s", out)
		}
	})

	t.Run("pay fails as JSON", func(t *testing.T) {
		code, out, errOut := run(t, "pay", "--credentials", creds, "--phone", "231770000001", "--json")
		if code != exitFailed {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		events := sdkJSONLines(t, out)
		// Steps carry their ids as fields next to the message.
		steps := map[string]map[string]any{}
		for _, e := range events {
			if e["event"] == "step" {
				if _, ok := e["message"].(string); !ok {
					t.Errorf("step without a message: %v", e)
				}
				steps[e["step"].(string)] = e
			}
		}
		if ex := steps["execute"]; ex == nil || ex["reference_id"] == nil || ex["session_id"] != steps["session"]["session_id"] || steps["session"]["session_id"] == nil {
			t.Errorf("steps lack reference_id/session_id fields: %v", steps)
		}
		last := events[len(events)-1]
		exec, _ := last["execution"].(map[string]any)
		if last["event"] != "final" || exec["status"] != "FAILED" || exec["gateway_message"] == "" {
			t.Errorf("last line %v", last)
		}
		// As the Status API says: no client secret for mobile money is null, not "".
		if v, ok := exec["client_secret"]; !ok || v != nil {
			t.Errorf("final client_secret = %#v (present %v), want null", v, ok)
		}
		var sawProcessing bool
		for _, e := range events {
			if e["event"] == "status" && e["status"] == "PROCESSING" {
				sawProcessing = true
			}
			if e["event"] == "fallback" {
				t.Errorf("realtime fell back to polling: %v", e)
			}
		}
		if !sawProcessing {
			t.Errorf("no PROCESSING status line in:\n%s", out)
		}
	})

	t.Run("pay ORDER and its watch hint", func(t *testing.T) {
		code, out, errOut := run(t, "pay", "--credentials", creds, "--source-kind", "ORDER")
		if code != exitCompleted {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		var hint []string
		for _, l := range strings.Split(out, "\n") {
			if i := strings.Index(l, "(later: dollr watch "); i >= 0 {
				hint = strings.Fields(strings.TrimSuffix(l[i+len("(later: "):], ")"))
			}
		}
		if len(hint) != 7 || hint[5] != "--source-type" || hint[6] != "ORDER" {
			t.Fatalf("hint %q lacks --source-type ORDER:\n%s", hint, out)
		}
		// The hint, run as given, follows the payment over realtime.
		code, out, errOut = run(t, append(hint[1:], "--credentials", creds, "--json")...)
		events := sdkJSONLines(t, out)
		for _, e := range events {
			if e["event"] == "fallback" {
				t.Errorf("the hint's watch fell back to polling: %v", e)
			}
		}
		if code != exitCompleted || events[len(events)-1]["event"] != "final" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("pay card with 3-D Secure", func(t *testing.T) {
		code, out, errOut := run(t, "pay", "--credentials", creds, "--card", "pm_card_threeDSecure2Required")
		if code != exitCompleted || !strings.Contains(out, "3-D Secure") {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("watch a completed payment", func(t *testing.T) {
		if completedRef == "" {
			t.Skip("pay did not run")
		}
		code, out, errOut := run(t, "watch", completedRef, "--credentials", creds, "--session-id", sessionID)
		if code != exitCompleted || !strings.Contains(out, "COMPLETED") {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		// Without a session id: polling only, same answer.
		code, out, errOut = run(t, "watch", "--json", "--credentials", creds, completedRef)
		events := sdkJSONLines(t, out)
		if code != exitCompleted || events[len(events)-1]["event"] != "final" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("watch times out", func(t *testing.T) {
		// A slow payment (phone ending 02) outlives --timeout.
		code, out, errOut := run(t, "pay", "--credentials", creds, "--phone", "231770000002", "--timeout", "3s")
		if code != exitError || strings.Contains(out, "COMPLETED") ||
			!(strings.Contains(errOut, "timed out") || strings.Contains(errOut, "deadline exceeded")) {
			t.Fatalf("exit %d, want 2 after a timeout\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("watch unknown reference with a session id", func(t *testing.T) {
		if sessionID == "" {
			t.Skip("pay did not run")
		}
		// Without the Status API check first, realtime would wait its 30 s
		// window and --timeout would end it instead.
		code, out, errOut := run(t, "watch", "00000000-0000-4000-8000-000000000000", "--session-id", sessionID, "--credentials", creds, "--timeout", "20s")
		if code != exitError || !strings.Contains(errOut, "not found") || strings.Contains(errOut, "timed out") {
			t.Fatalf("exit %d, want 2 with a 404 at once\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	t.Run("watch errors", func(t *testing.T) {
		for name, args := range map[string][]string{
			"unknown reference":  {"watch", "--credentials", creds, "00000000-0000-4000-8000-000000000000"},
			"no reference":       {"watch", "--credentials", creds},
			"two references":     {"watch", "--credentials", creds, "a", "b"},
			"no credentials":     {"watch", "--credentials", filepath.Join(t.TempDir(), "none.json"), "00000000-0000-4000-8000-000000000000"},
			"bad flag":           {"watch", "--nope"},
			"pay bad amount":     {"pay", "--credentials", creds, "--amount", "-1"},
			"pay unknown method": {"pay", "--credentials", creds, "--phone", "4915112345678"},
		} {
			if code, out, errOut := run(t, args...); code != exitError {
				t.Errorf("%s: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", name, code, out, errOut)
			}
		}
	})
}

// sdkJSONLines parses --json output: every line must be one JSON object.
func sdkJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		if _, ok := m["time"].(string); !ok {
			t.Errorf("line without a time: %q", sc.Text())
		}
		events = append(events, m)
	}
	if len(events) == 0 {
		t.Fatal("no output")
	}
	return events
}
