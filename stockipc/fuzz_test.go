package stockipc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func addGoldenSeeds(f *testing.F) [][]byte {
	paths, _ := filepath.Glob("testdata/stock-2.1.8/*.req")
	var seeds [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// Whatever decodes encodes again to bytes that decode to the same request;
// nothing panics.
func FuzzDecodeRequest(f *testing.F) {
	for _, b := range addGoldenSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		b2, err := EncodeRequest(r)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		r2, err := DecodeRequest(b2)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v, then %+v", r, r2)
		}
	})
}

// A record patched anywhere, in any layout, decodes or is refused, and what
// decodes survives the round trip. The fuzzer finds more this way than by
// mutating 16 KiB inputs whose length must stay exact.
func FuzzDecodeRecordPatch(f *testing.F) {
	seeds := addGoldenSeeds(f)
	f.Add(uint8(0), uint8(0), uint16(16+16), []byte("\xff\xff"))
	f.Add(uint8(1), uint8(2), uint16(16+276), []byte{7, 0, 0, 0})
	f.Add(uint8(2), uint8(3), uint16(16+3432), []byte("fe80::1\x00"))
	f.Add(uint8(3), uint8(1), uint16(16+1356), []byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, which, layoutIdx uint8, off uint16, patch []byte) {
		src := seeds[int(which)%len(seeds)]
		l := allLayouts[int(layoutIdx)%len(allLayouts)]
		b := make([]byte, l.reqSize)
		copy(b, src[:min(len(src), offRec)])
		// Re-home the seed's record into this layout's.
		if r, err := DecodeRequest(src); err == nil && r.Record != nil {
			r.Size = l.reqSize
			for k := range r.Record {
				if l.field(k) == nil {
					delete(r.Record, k)
				}
			}
			if e, err := EncodeRequest(r); err == nil {
				b = e
			}
		}
		copy(b[int(off)%len(b):], patch)
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		b2, err := EncodeRequest(r)
		if err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
		if r2, err := DecodeRequest(b2); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v, then %+v (%v)", r, r2, err)
		}
	})
}

// The server's read path: any bytes, written in two pieces and then shut,
// get one whole answer (or none for no bytes), never a hang.
func FuzzServeConn(f *testing.F) {
	for _, b := range addGoldenSeeds(f) {
		f.Add(b, uint16(len(b)/2))
		f.Add(b[:100], uint16(4))
	}
	f.Add([]byte{}, uint16(0))
	f.Add(make([]byte, 40000), uint16(20000))
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if len(data) > 3*maxReqSize {
			return
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		conn := func(fd int) *net.UnixConn {
			f := os.NewFile(uintptr(fd), "socketpair")
			defer f.Close()
			c, err := net.FileConn(f)
			if err != nil {
				t.Fatal(err)
			}
			return c.(*net.UnixConn)
		}
		srvSide, cli := conn(fds[0]), conn(fds[1])
		defer cli.Close()
		s := &Server{
			Handler: HandlerFunc(func(_ context.Context, r *Request) *Response { return &Response{} }),
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			peerUID: func(net.Conn) (uint32, error) { return 0, nil },
			// The client shuts its side after writing, so the read ends
			// at EOF; a long settle keeps a loaded machine's pause
			// between the two writes from ending it early.
			settle: 5 * time.Second, ReadTimeout: 5 * time.Second,
		}
		done := make(chan struct{})
		go func() { defer close(done); s.serveConn(context.Background(), srvSide) }()
		cut := int(split) % (len(data) + 1)
		go func() {
			cli.Write(data[:cut])
			cli.Write(data[cut:])
			cli.CloseWrite()
		}()
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := io.ReadAll(cli)
		// A client that writes more than any request may still be writing
		// when the server, having answered, closes: its read then ends in
		// ECONNRESET after the answer, as it would with stock iscsid.
		if err != nil && !(errors.Is(err, unix.ECONNRESET) && len(data) > maxReqSize && len(resp) == ResponseSize) {
			t.Fatalf("reading the answer: %v", err)
		}
		<-done
		if len(data) == 0 {
			if len(resp) != 0 {
				t.Fatalf("answer of %d bytes to no request", len(resp))
			}
			return
		}
		if len(resp) != ResponseSize {
			t.Fatalf("answer of %d bytes to %d", len(resp), len(data))
		}
		if _, err := DecodeResponse(resp); err != nil {
			t.Fatal(err)
		}
	})
}
