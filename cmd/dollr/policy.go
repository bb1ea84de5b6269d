package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/realtime"
	"github.com/dollr/dollr/token"
)

// paymentIntentTopic is the channel a realtime key may join, as Dollr's
// realtime guide names it: payment-intent:<session_id>:<reference_id>.
const paymentIntentTopic = "payment-intent:"

// publicStatusTable is the one table the realtime server serves.
var publicStatusTable = realtime.Table{
	Schema:  dollr.PublicSchema,
	Name:    dollr.PublicStatusTable,
	Columns: dollr.PublicStatusColumns,
	Key:     []string{dollr.PublicStatusKey},
}

// rowPolicy is the application's row security for realtime: a realtime key
// (typ realtime, role authenticated) may join only its own payment-intent
// channel, and its subscriptions see only the public status rows of its
// session and reference, whatever filter the client sends. The anon key alone,
// or any other token, may join nothing.
func rowPolicy(claims map[string]any, subTopic string) (realtime.Grant, error) {
	typ, _ := claims["typ"].(string)
	role, _ := claims["role"].(string)
	ref, _ := claims["reference_id"].(string)
	sessionID, okSession := claimInt(claims["session_id"])
	if typ != token.TypeRealtime || role != token.RoleAuthenticated || !okSession || ref == "" {
		return realtime.Grant{}, &realtime.JoinError{Code: "Unauthorized",
			Message: "You do not have permissions to read from this Channel topic: " + subTopic}
	}
	ref = strings.ToLower(ref)
	sid := strconv.FormatInt(sessionID, 10)
	if subTopic != paymentIntentTopic+sid+":"+ref {
		return realtime.Grant{}, &realtime.JoinError{Code: "Unauthorized",
			Message: "You do not have permissions to read from this Channel topic: " + subTopic}
	}
	return realtime.Grant{Allow: true, Rows: map[string]map[string]string{
		dollr.PublicSchema + "." + dollr.PublicStatusTable: {"session_id": sid, "reference_id": ref},
	}}, nil
}

// claimInt reads an integer claim (json.Number, as the realtime server
// decodes numbers).
func claimInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil && i > 0
	case float64:
		i := int64(n)
		return i, float64(i) == n && i > 0
	}
	return 0, false
}

// statusSnapshotter gives a new subscription the current public status row,
// so a client that subscribes after a change still sees the latest status.
type statusSnapshotter struct{ store dollr.Store }

func (s statusSnapshotter) Snapshot(ctx context.Context, schema, table string, eq map[string]string) ([]dollr.Change, uint64, error) {
	if schema != dollr.PublicSchema || table != dollr.PublicStatusTable {
		return nil, 0, nil
	}
	sessionID, err := strconv.ParseInt(eq["session_id"], 10, 64)
	ref := eq["reference_id"]
	if err != nil || ref == "" {
		// Without both keys there is no single row to read; live changes still flow.
		return nil, 0, nil
	}
	row, seq, err := s.store.PublicStatus(ctx, sessionID, ref)
	if dollr.IsNotFound(err) {
		return nil, 0, nil
	} else if err != nil {
		return nil, 0, err
	}
	// PostgreSQL knows a time no earlier than the commit the row reflects; a
	// snapshot stamped earlier than a live event already sent would look stale.
	commitTime := row.CommitTime
	if commitTime.IsZero() {
		commitTime = row.UpdatedAt
	}
	return []dollr.Change{{
		Seq: seq, Schema: schema, Table: table, Type: dollr.ChangeInsert, CommitTime: commitTime,
		Columns: dollr.PublicStatusColumns, Record: row.Record(),
	}}, seq, nil
}
