package scrape

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestReadRequest(t *testing.T) {
	for _, tc := range []struct {
		in, method, path, err string
	}{
		{in: "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", method: "GET", path: "/metrics"},
		{in: "HEAD /metrics?name[]=x HTTP/1.0\n\n", method: "HEAD", path: "/metrics"},
		{in: "GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", method: "GET", path: "/metrics"},
		{in: "GET /metrics HTTP/2.0\r\n\r\n", err: "not HTTP/1.0 or HTTP/1.1"},
		{in: "GET /metrics\r\n\r\n", err: "want METHOD TARGET HTTP/1.x"},
		{in: "get /metrics HTTP/1.1\r\n\r\n", err: "upper-case"},
		{in: "GET metrics HTTP/1.1\r\n\r\n", err: "start with /"},
		{in: "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", err: "want Name: value"},
		{in: "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", err: "has no body"},
		{in: "POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", err: "has no body"},
		{in: "GET /metrics HTTP/1.1\r\nHost: x\r\n", err: "before its empty line"},
		{in: "GET /metrics HTTP/1.1\r\nHost: x", err: "inside a line"},
		{in: "GET /met\rrics HTTP/1.1\r\n\r\n", err: "CR or NUL"},
		{in: "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\n\r\n", err: "longer than"},
		{in: "", err: "before its empty line"},
	} {
		r, err := ReadRequest(bufio.NewReaderSize(strings.NewReader(tc.in), 1024))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%.40q: error %v, want one saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || r.Method != tc.method || r.Path != tc.path {
			t.Errorf("%.40q: %+v, %v; want %s %s", tc.in, r, err, tc.method, tc.path)
		}
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("HEAD / HTTP/1.0\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ReadRequest(bufio.NewReaderSize(io.LimitReader(strings.NewReader(in), MaxHeadBytes), 1024))
		if err == nil && (r.Method == "" || !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "?")) {
			t.Errorf("%q: accepted as %+v", in, r)
		}
	})
}

// A server answers scrapes on a real listener, cuts off a client that
// never finishes its request, and stops when its context ends.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Write: func(w io.Writer) error { _, err := io.WriteString(w, "up 1\n"); return err }}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	ask := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\nup 1\n") ||
		!strings.Contains(got, "Content-Length: 5\r\n") || !strings.Contains(got, "Content-Type: "+ContentType+"\r\n") {
		t.Errorf("scrape answered %q", got)
	}
	if got := ask("GET /other HTTP/1.1\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 404 ") {
		t.Errorf("other path answered %q", got)
	}
	if got := ask("BREW /metrics HTTP/1.1\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 405 ") {
		t.Errorf("other method answered %q", got)
	}
	if got := ask("garbage\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400 ") {
		t.Errorf("garbage answered %q", got)
	}
	// A client that sends half a request holds a connection until ctx
	// ends: Serve must not wait for it longer.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /metrics HTTP/1.1\r\n")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after its context ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("the listener still accepts after Serve returned")
	}
}
