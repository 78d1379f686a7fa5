// Package scrape serves Prometheus scrapes: GET /metrics over HTTP/1.x on
// any net.Listener, TCP or unix socket, without net/http.
//
// goiscsid's metrics endpoint needs one resource, one method and no TLS,
// cookies, keep-alive or request bodies. net/http would add 1.0 MB (22%) to
// goiscsid's stripped binary (measured: 4.80 MB without, 5.85 MB with it);
// this package adds a few kilobytes. Every connection answers one request
// and closes (Connection: close), which Prometheus and curl handle as any
// HTTP/1.1 server's.
package scrape

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// ContentType is the Prometheus text exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Limits on what a client may send and take. A scrape's request head is a
// few hundred bytes; a client that sends more, or keeps the connection
// without finishing, is cut off.
const (
	MaxHeadBytes   = 8 << 10
	ConnTimeout    = 10 * time.Second
	MaxConnections = 16
)

// Server answers scrapes of Path with what Write writes.
type Server struct {
	// Write writes the metrics in the text exposition format.
	Write func(w io.Writer) error
	// Path is the resource served; empty means "/metrics".
	Path string
	// Log receives failed requests at debug level and failed writes as
	// warnings; nil discards them.
	Log *slog.Logger
}

// Serve answers scrapes on ln until ctx ends, then closes ln and waits for
// the requests being answered. Connections beyond MaxConnections at once are
// closed at once. It returns nil when ctx ended, else the listener's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, MaxConnections)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			log.Debug("metrics: too many connections; closing one", "max", MaxConnections)
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.serveConn(ctx, c, log)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn, log *slog.Logger) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ConnTimeout))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, err := ReadRequest(bufio.NewReaderSize(io.LimitReader(c, MaxHeadBytes), 1024))
	if err != nil {
		log.Debug("metrics: bad request", "err", err)
		writeResponse(c, "400 Bad Request", "text/plain; charset=utf-8", []byte(err.Error()+"\n"), false)
		return
	}
	path := s.Path
	if path == "" {
		path = "/metrics"
	}
	switch {
	case req.Method != "GET" && req.Method != "HEAD":
		writeResponse(c, "405 Method Not Allowed", "text/plain; charset=utf-8", []byte("only GET and HEAD\n"), false)
	case req.Path != path:
		writeResponse(c, "404 Not Found", "text/plain; charset=utf-8", []byte("metrics are at "+path+"\n"), false)
	default:
		var body bytes.Buffer
		if err := s.Write(&body); err != nil {
			log.Warn("metrics: writing the exposition failed", "err", err)
			writeResponse(c, "500 Internal Server Error", "text/plain; charset=utf-8", []byte("writing the metrics failed\n"), false)
			return
		}
		if err := writeResponse(c, "200 OK", ContentType, body.Bytes(), req.Method == "HEAD"); err != nil {
			log.Debug("metrics: sending the answer failed", "err", err)
		}
	}
}

func writeResponse(w io.Writer, status, contentType string, body []byte, headOnly bool) error {
	head := fmt.Sprintf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", status, contentType, len(body))
	if headOnly {
		_, err := io.WriteString(w, head)
		return err
	}
	_, err := w.Write(append([]byte(head), body...))
	return err
}

// Request is what a scrape asks for.
type Request struct {
	Method string
	// Path is the request target without its query string.
	Path string
}

// ReadRequest reads an HTTP/1.x request head from r: the request line and
// the header lines up to the empty line, whose fields it ignores (a scrape's
// Accept and User-Agent change nothing). A request line that is not
// "METHOD TARGET HTTP/1.x", a line without its CRLF or LF, a request with a
// body (Content-Length other than 0, Transfer-Encoding) or a head cut short
// is an error saying which.
func ReadRequest(r *bufio.Reader) (Request, error) {
	line, err := readLine(r)
	if err != nil {
		return Request{}, fmt.Errorf("request line: %w", err)
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 {
		return Request{}, fmt.Errorf("request line %q: want METHOD TARGET HTTP/1.x", clip(line))
	}
	method, target, proto := parts[0], parts[1], parts[2]
	if method == "" || strings.IndexFunc(method, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
		return Request{}, fmt.Errorf("request line %q: method must be upper-case letters", clip(line))
	}
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return Request{}, fmt.Errorf("request line %q: protocol %q is not HTTP/1.0 or HTTP/1.1", clip(line), clip(proto))
	}
	if !strings.HasPrefix(target, "/") {
		return Request{}, fmt.Errorf("request line %q: target must start with /", clip(line))
	}
	path, _, _ := strings.Cut(target, "?")
	for {
		h, err := readLine(r)
		if err != nil {
			return Request{}, fmt.Errorf("header: %w", err)
		}
		if h == "" {
			return Request{Method: method, Path: path}, nil
		}
		name, value, ok := strings.Cut(h, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return Request{}, fmt.Errorf("header line %q: want Name: value", clip(h))
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Content-Length") && value != "0":
			return Request{}, fmt.Errorf("a scrape has no body (Content-Length: %s)", clip(value))
		case strings.EqualFold(name, "Transfer-Encoding"):
			return Request{}, fmt.Errorf("a scrape has no body (Transfer-Encoding: %s)", clip(value))
		}
	}
}

// readLine reads one line ending in LF (CRLF or a bare LF, as HTTP/1.1
// allows readers to accept) and returns it without the ending.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("line longer than %d bytes", r.Size())
	case errors.Is(err, io.EOF) && len(b) > 0:
		return "", fmt.Errorf("head ends inside a line (%d bytes without LF; the limit is %d bytes)", len(b), MaxHeadBytes)
	case errors.Is(err, io.EOF):
		return "", fmt.Errorf("head ends before its empty line")
	case err != nil:
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.ContainsAny(s, "\r\x00") {
		return "", fmt.Errorf("line %q holds a CR or NUL", clip(s))
	}
	return s, nil
}

// clip shortens what a client sent for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
