// Package httplog records what an HTTP handler answered, for the access logs
// and request metrics of the API and the hosted checkout page.
package httplog

import "net/http"

// Recorder wraps a ResponseWriter and remembers the status and the size of
// the response written through it.
type Recorder struct {
	http.ResponseWriter
	Status int // 0 until the handler writes
	Bytes  int
}

func (w *Recorder) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Recorder) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Code is the status the handler answered: 200 if it wrote nothing.
func (w *Recorder) Code() int {
	if w.Status == 0 {
		return http.StatusOK
	}
	return w.Status
}
