package realtime

import (
	"context"

	"github.com/dollr/dollr"
)

// Policy decides, for the verified claims of a token, whether a channel topic
// may be joined and which rows its postgres_changes subscriptions may see. It
// is called at every join and again at every access_token refresh.
type Policy interface {
	// Authorize receives the verified claims (numbers as json.Number; shared,
	// so read-only) and the sub-topic, i.e. the topic without "realtime:".
	// Authorize runs on the connection's goroutine; it should be quick.
	Authorize(claims map[string]any, subTopic string) (Grant, error)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(claims map[string]any, subTopic string) (Grant, error)

// Authorize calls f.
func (f PolicyFunc) Authorize(claims map[string]any, subTopic string) (Grant, error) {
	return f(claims, subTopic)
}

// Grant is a policy's decision for one channel.
type Grant struct {
	// Allow admits the join. A refused join gets the join error
	// "Unauthorized: You do not have permissions to read from this Channel topic: <sub-topic>".
	Allow bool
	// Rows restricts what the channel's subscriptions see, by table
	// ("schema.table"). nil: every row of every served table. Otherwise only
	// the tables named are visible, and within each only the rows whose columns
	// equal all the given values (text, cast to the column type). These
	// conditions are ANDed to whatever filter the client sends; a subscription
	// to a table it may not see is accepted but receives nothing, as row
	// security would do.
	Rows map[string]map[string]string
}

// JoinError is an error a Policy may return to refuse a join with its own
// reason; any other error refuses it with "Unknown Error on Channel".
type JoinError struct {
	Code    string // e.g. "Unauthorized"
	Message string
}

func (e *JoinError) Error() string { return e.Code + ": " + e.Message }

// allowAll is the policy of a server configured without one.
var allowAll = PolicyFunc(func(map[string]any, string) (Grant, error) { return Grant{Allow: true}, nil })

// Snapshotter reads the current committed rows a new subscription covers, so a
// subscriber that joins after a change still sees the row's latest state.
type Snapshotter interface {
	// Snapshot returns the rows of schema.table whose columns equal every
	// value in eq (canonical text: lower-case uuids, decimal integers), as
	// changes of type INSERT (or UPDATE), and the Seq of the newest change the
	// read reflects. Live changes at or below that Seq are not delivered to the
	// subscription afterwards, which keeps each row's events in commit order.
	// So read the Seq in the same transaction as the rows (or before them),
	// never after: a Seq newer than the rows would hide a change.
	Snapshot(ctx context.Context, schema, table string, eq map[string]string) ([]dollr.Change, uint64, error)
}
