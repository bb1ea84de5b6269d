package client

import "testing"

// StartServerForExamples starts a real dollr serve for the runnable examples
// (package client_test) and returns its credentials.json path.
func StartServerForExamples(t *testing.T) string {
	return startServer(t, "--sandbox-delay", "2s").CredentialsPath()
}
