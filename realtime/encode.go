package realtime

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/dollr/dollr"
)

// commitTimestampLayout is the real server's commit_timestamp format (§7.1).
const commitTimestampLayout = "2006-01-02T15:04:05.000Z"

// encodeChangeData renders a change's "data" object once; every channel's
// frame then embeds the same bytes.
func encodeChangeData(c *dollr.Change, t *table) []byte {
	buf := make([]byte, 0, 256+64*len(t.cols))
	buf = append(buf, `{"schema":`...)
	buf = appendJSONString(buf, c.Schema)
	buf = append(buf, `,"table":`...)
	buf = appendJSONString(buf, c.Table)
	buf = append(buf, `,"commit_timestamp":"`...)
	buf = c.CommitTime.UTC().AppendFormat(buf, commitTimestampLayout)
	buf = append(buf, `","type":"`...)
	buf = append(buf, c.Type...)
	buf = append(buf, `","columns":`...)
	cols := t.src
	if len(c.Columns) > 0 && !sameColumns(c.Columns, t.src) {
		buf = appendColumns(buf, c.Columns)
		cols = c.Columns
	} else {
		buf = append(buf, t.colsJSON...)
	}
	if c.Type != dollr.ChangeDelete {
		buf = append(buf, `,"record":`...)
		buf = appendRecord(buf, cols, c.Record, nil)
	}
	if c.Type != dollr.ChangeInsert {
		buf = append(buf, `,"old_record":`...)
		var only []string
		if c.Type == dollr.ChangeDelete {
			only = t.key
		}
		buf = appendRecord(buf, cols, c.OldRecord, only)
	}
	return append(buf, `,"errors":null}`...)
}

func sameColumns(a, b []dollr.Column) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) > 0 && &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

func appendColumns(buf []byte, cols []dollr.Column) []byte {
	buf = append(buf, '[')
	for i, c := range cols {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":`...)
		buf = appendJSONString(buf, c.Name)
		buf = append(buf, `,"type":`...)
		buf = appendJSONString(buf, c.Type)
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// appendRecord renders a row in column order, then any keys the columns do
// not name, sorted. only, when non-empty, keeps just those columns.
func appendRecord(buf []byte, cols []dollr.Column, row map[string]any, only []string) []byte {
	buf = append(buf, '{')
	n := 0
	emit := func(k string, v any) {
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = appendValue(buf, v)
	}
	if len(only) > 0 {
		for _, k := range only {
			if v, ok := row[k]; ok {
				emit(k, v)
			}
		}
		return append(buf, '}')
	}
	for _, c := range cols {
		if v, ok := row[c.Name]; ok {
			emit(c.Name, v)
		}
	}
	if n < len(row) {
		var extra []string
		for k := range row {
			if !slices.ContainsFunc(cols, func(c dollr.Column) bool { return c.Name == k }) {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		for _, k := range extra {
			emit(k, row[k])
		}
	}
	return append(buf, '}')
}

// appendValue renders a JSON-typed row value (see dollr.Change).
func appendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case string:
		return appendJSONString(buf, x)
	case bool:
		return strconv.AppendBool(buf, x)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case int:
		return strconv.AppendInt(buf, int64(x), 10)
	case int32:
		return strconv.AppendInt(buf, int64(x), 10)
	case json.Number:
		if isJSONNumber(string(x)) {
			return append(buf, x...)
		}
		return appendJSONString(buf, string(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return appendJSONString(buf, strconv.FormatFloat(x, 'g', -1, 64)) // to_jsonb renders these as strings
		}
		return strconv.AppendFloat(buf, x, 'g', -1, 64)
	case time.Time:
		return appendJSONString(buf, dollr.FormatTimestamptz(x))
	case json.RawMessage:
		if json.Valid(x) {
			return append(buf, x...)
		}
		return append(buf, "null"...)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(buf, "null"...)
	}
	return append(buf, b...)
}

// isJSONNumber reports whether s is a valid JSON number literal.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return false
	}
	if s[i] == '0' {
		i++
	} else if s[i] >= '1' && s[i] <= '9' {
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}
