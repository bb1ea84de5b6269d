package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
)

// A card's client secret is "pi_<24 alnum>_secret_<base32>", Stripe's shape.
// The base32 part packs the merchant id, the reference_id and 12 random bytes,
// so POST /v1/sandbox/3ds/{client_secret} finds the payment with the store's
// ordinary lookup, and the random bytes (compared with the stored secret) make
// it unguessable.
var secretEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newClientSecret(pi string, merchantID int64, referenceID string) (string, error) {
	ref, err := uuid.Parse(referenceID)
	if err != nil {
		return "", err
	}
	b := binary.AppendUvarint(nil, uint64(merchantID))
	b = append(b, ref[:]...)
	r := make([]byte, 12)
	if _, err := rand.Read(r); err != nil {
		return "", err
	}
	b = append(b, r...)
	return pi + "_secret_" + secretEncoding.EncodeToString(b), nil
}

// parseClientSecret returns the merchant and reference a client secret names.
func parseClientSecret(s string) (merchantID int64, referenceID string, ok bool) {
	if len(s) > 200 || !strings.HasPrefix(s, "pi_") {
		return 0, "", false
	}
	_, enc, found := strings.Cut(s, "_secret_")
	if !found {
		return 0, "", false
	}
	b, err := secretEncoding.DecodeString(enc)
	if err != nil {
		return 0, "", false
	}
	id, n := binary.Uvarint(b)
	if n <= 0 || id == 0 || id > 1<<62 || len(b) != n+16+12 {
		return 0, "", false
	}
	ref, err := uuid.FromBytes(b[n : n+16])
	if err != nil {
		return 0, "", false
	}
	return int64(id), ref.String(), true
}

// Authenticate answers the 3-D Secure challenge of the card payment with the
// given client secret: it completes (succeed) or fails it. Answering a
// challenge that was already decided (or timed out) changes nothing and
// returns the payment as it is. An unknown secret is ENOTFOUND.
func Authenticate(ctx context.Context, store dollr.Store, clientSecret string, succeed bool, now time.Time) (*dollr.Execution, error) {
	notFound := dollr.NotFound("Payment intent")
	merchantID, ref, ok := parseClientSecret(clientSecret)
	if !ok {
		return nil, notFound
	}
	e, err := store.Execution(ctx, merchantID, ref)
	if dollr.IsNotFound(err) {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(e.ClientSecret), []byte(clientSecret)) != 1 {
		return nil, notFound
	}
	if e.Status != dollr.StatusProcessing || !e.RequiresAction {
		return e, nil
	}
	to, msg := dollr.StatusCompleted, Msg3DSSucceeded
	if !succeed {
		to, msg = dollr.StatusFailed, Msg3DSFailed
	}
	no := false
	after, _, err := store.ApplyTransition(ctx, dollr.Transition{
		ExecutionID: e.ID, From: dollr.StatusProcessing, To: to, At: now,
		GatewayMessage: &msg, RequiresAction: &no,
	})
	if err != nil {
		return nil, err
	}
	return after, nil
}
