package httplog

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRecorder(t *testing.T) {
	for _, c := range []struct {
		name   string
		handle func(w http.ResponseWriter)
		code   int
		bytes  int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 200, 0},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("hello")) }, 200, 5},
		{"status then body", func(w http.ResponseWriter) { w.WriteHeader(422); w.Write([]byte("no")) }, 422, 2},
		{"second status ignored", func(w http.ResponseWriter) { w.WriteHeader(503); w.WriteHeader(200) }, 503, 0},
	} {
		rec := &Recorder{ResponseWriter: httptest.NewRecorder()}
		c.handle(rec)
		if rec.Code() != c.code || rec.Bytes != c.bytes {
			t.Errorf("%s: code %d, %d bytes; want %d, %d", c.name, rec.Code(), rec.Bytes, c.code, c.bytes)
		}
	}
}
