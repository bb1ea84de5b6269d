package postgres

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dollr/dollr"
)

func TestUnreachable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // terminating connection due to administrator command
		{&pgconn.PgError{Code: "57P03"}, true}, // the database system is starting up
		{&pgconn.PgError{Code: "08006"}, true}, // connection failure
		{fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation: the statement, not the server
		{&pgconn.PgError{Code: "42P01"}, false},
		{errors.New("something else"), false},
	} {
		if got := Unreachable(c.err); got != c.want {
			t.Errorf("Unreachable(%v) = %v, want %v", c.err, got, c.want)
		}
		wantCode := dollr.EINTERNAL
		if c.want {
			wantCode = dollr.EUNAVAILABLE
		}
		if code := dollr.ErrorCode(internal("op", c.err)); code != wantCode {
			t.Errorf("internal(%v) has code %s, want %s", c.err, code, wantCode)
		}
	}
}
