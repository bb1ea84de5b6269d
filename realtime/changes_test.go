package realtime

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

type change = dollr.Change

var commitAt = time.Date(2026, 11, 25, 16, 58, 29, 779123000, time.UTC)

func itemRow(id int64) map[string]any {
	return map[string]any{
		"id": id, "ref": fmt.Sprintf("6f1c2d1e-0000-4000-8000-%012d", id), "name": fmt.Sprintf("item %d", id),
		"amount": json.Number("12.50"), "done": false, "at": "2026-08-21T12:00:00.123456+00:00",
		"meta": map[string]any{"a": int64(1)}, "score": 1.5,
	}
}

func itemInsert(id int64, seq uint64) change {
	return change{Seq: seq, Schema: "public", Table: "items", Type: dollr.ChangeInsert, CommitTime: commitAt,
		Columns: itemsTable.Columns, Record: itemRow(id)}
}

func itemUpdate(id int64, seq uint64, mutate func(map[string]any)) change {
	r := itemRow(id)
	if mutate != nil {
		mutate(r)
	}
	return change{Seq: seq, Schema: "public", Table: "items", Type: dollr.ChangeUpdate, CommitTime: commitAt,
		Columns: itemsTable.Columns, Record: r, OldRecord: map[string]any{"id": id}}
}

func itemDelete(id int64, seq uint64) change {
	return change{Seq: seq, Schema: "public", Table: "items", Type: dollr.ChangeDelete, CommitTime: commitAt,
		Columns: itemsTable.Columns, OldRecord: map[string]any{"id": id}}
}

func bindingID(t *testing.T, reply map[string]any, i int) string {
	t.Helper()
	return string(reply["response"].(map[string]any)["postgres_changes"].([]any)[i].(map[string]any)["id"].(json.Number))
}

const itemsColumnsJSON = `[{"name":"id","type":"int8"},{"name":"ref","type":"uuid"},{"name":"name","type":"text"},{"name":"amount","type":"numeric"},{"name":"done","type":"bool"},{"name":"at","type":"timestamptz"},{"name":"meta","type":"jsonb"},{"name":"score","type":"float8"}]`

func TestPostgresChangesFrames(t *testing.T) {
	srv := startServer(t, Config{})
	c2 := dial(t, srv, "2.0.0")
	c1 := dial(t, srv, "1.0.0")
	items := map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "id=eq.1"}
	_, reply := c2.joinOK("realtime:room", joinPayload("", items))
	c1.joinOK("realtime:room", joinPayload("", items))
	id := bindingID(t, reply, 0)

	srv.Publish([]change{itemInsert(2, 1), itemInsert(1, 2), itemUpdate(1, 3, func(r map[string]any) { r["done"] = true }), itemDelete(2, 4), itemDelete(1, 5)})

	record := `{"id":1,"ref":"6f1c2d1e-0000-4000-8000-000000000001","name":"item 1","amount":12.50,"done":false,"at":"2026-08-21T12:00:00.123456+00:00","meta":{"a":1},"score":1.5}`
	insertData := `{"schema":"public","table":"items","commit_timestamp":"2026-11-25T16:58:29.779Z","type":"INSERT","columns":` + itemsColumnsJSON + `,"record":` + record + `,"errors":null}`
	if got, want := c2.next().Raw, `[null,null,"realtime:room","postgres_changes",{"ids":[`+id+`],"data":`+insertData+`}]`; got != want {
		t.Errorf("v2 insert:\n got %s\nwant %s", got, want)
	}
	if got, want := c1.next().Raw, `{"topic":"realtime:room","event":"postgres_changes","payload":{"ids":[`+id+`],"data":`+insertData+`},"ref":null,"join_ref":null}`; got != want {
		t.Errorf("v1 insert:\n got %s\nwant %s", got, want)
	}
	for _, c := range []*client{c2, c1} {
		if c == c2 {
			continue
		}
		c.nextEvent("postgres_changes")
		c.nextEvent("postgres_changes")
	}
	upd := c2.nextEvent("postgres_changes").payload()["data"].(map[string]any)
	if upd["type"] != "UPDATE" || upd["record"].(map[string]any)["done"] != true || fmt.Sprint(upd["old_record"]) != "map[id:1]" {
		t.Errorf("update data: %v", upd)
	}
	del := c2.nextEvent("postgres_changes").payload()["data"].(map[string]any)
	if _, has := del["record"]; has || del["type"] != "DELETE" || fmt.Sprint(del["old_record"]) != "map[id:1]" {
		t.Errorf("delete data: %v", del)
	}
	if _, has := del["columns"].([]any); !has {
		t.Errorf("delete lacks columns array: %v", del)
	}
	c2.quiet(50 * time.Millisecond)
	eventually(t, "delivered counter", func() bool {
		return counterValue(t, srv.reg, "dollr_realtime_events_delivered_total", nil) == 6 &&
			counterValue(t, srv.reg, "dollr_realtime_delivery_lag_seconds", nil) == 6
	})
}

func TestEventFiltersAndIDs(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	_, reply := c.joinOK("realtime:room", joinPayload("",
		map[string]any{"event": "update", "schema": "public", "table": "items"},
		map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "name=like.item%"},
		map[string]any{"event": "DELETE", "schema": "public", "table": "items"},
		map[string]any{"event": "INSERT", "schema": "public", "table": "checkout_payment_intent_public_status"},
	))
	upd, all, del := bindingID(t, reply, 0), bindingID(t, reply, 1), bindingID(t, reply, 2)
	srv.Publish([]change{itemInsert(1, 1), itemUpdate(1, 2, nil), itemDelete(1, 3)})
	for _, want := range [][]string{{all}, {upd, all}, {del}} {
		m := c.nextEvent("postgres_changes")
		var p struct{ IDs []json.Number }
		json.Unmarshal(m.Payload, &p)
		if fmt.Sprint(p.IDs) != fmt.Sprint(want) {
			t.Errorf("ids %v, want %v (%s)", p.IDs, want, m.Raw)
		}
	}
	c.quiet(50 * time.Millisecond)
}

func TestWildcardSubscriptions(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	c.joinOK("realtime:all", joinPayload("", map[string]any{"event": "*", "schema": "*"}))
	c2 := dial(t, srv, "2.0.0")
	c2.joinOK("realtime:pub", joinPayload("", map[string]any{"event": "INSERT", "schema": "public"}))
	c3 := dial(t, srv, "2.0.0")
	c3.joinOK("realtime:tableonly", joinPayload("", map[string]any{"table": "items"}))
	srv.Publish([]change{itemInsert(1, 1)})
	for _, cl := range []*client{c, c2, c3} {
		cl.nextEvent("postgres_changes")
	}
}

func TestSubscriptionErrors(t *testing.T) {
	srv := startServer(t, Config{})
	cases := []struct {
		name    string
		binding map[string]any
		want    string
	}{
		{name: "unknown column", binding: map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "nope=eq.1"},
			want: "Unable to subscribe to changes with given parameters. An exception happened so please check your connect parameters: [event: *, schema: public, table: items, filters: [{\"nope\", \"eq\", \"1\", false}], select: nil]. Exception: ERROR P0001 (raise_exception) invalid column for filter nope"},
		{name: "bad op", binding: map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "name=foo.hey"},
			want: "Error parsing `filter` params: [\"foo\", \"hey\"]"},
		{name: "undefined", binding: map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "undefined"},
			want: "Error parsing `filter` params: [\"undefined\"]"},
		{name: "bad cast", binding: map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "id=eq.abc"},
			want: "Exception: ERROR 22P02 (invalid_text_representation) invalid input syntax for type bigint: \"abc\""},
		{name: "unknown table", binding: map[string]any{"event": "*", "schema": "public", "table": "nope"},
			want: "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: nope, filters: [], select: nil]"},
		{name: "no params", binding: map[string]any{"event": "*"},
			want: "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{\"event\" => \"*\"}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv, "2.0.0")
			c.push("1", "1", "realtime:room", "phx_join", joinPayload("", tc.binding))
			if m := c.nextEvent("phx_reply"); m.payload()["status"] != "ok" {
				t.Fatalf("join should succeed: %s", m.Raw)
			}
			sys := c.nextEvent("system").payload()
			msg, _ := sys["message"].(string)
			if sys["status"] != "error" || sys["extension"] != "postgres_changes" || !strings.HasSuffix(msg, tc.want) {
				t.Errorf("system %v\nwant message ending %q", sys, tc.want)
			}
			srv.Publish([]change{itemInsert(1, 1)})
			c.quiet(30 * time.Millisecond)
		})
	}
}

// A join whose config has postgres_changes and nothing else (no broadcast or
// presence object, as a hand-written client may send) subscribes.
func TestJoinWithOnlyPostgresChanges(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	_, reply := c.joinOK("realtime:room", map[string]any{"config": map[string]any{
		"postgres_changes": []any{map[string]any{"event": "*", "schema": "public", "table": "items"}},
	}})
	id := bindingID(t, reply, 0)
	srv.Publish([]change{itemInsert(1, 1)})
	m := c.nextEvent("postgres_changes")
	var p struct{ IDs []json.Number }
	json.Unmarshal(m.Payload, &p)
	if fmt.Sprint(p.IDs) != fmt.Sprint([]string{id}) {
		t.Fatalf("event ids %v, want [%s] (%s)", p.IDs, id, m.Raw)
	}
}
