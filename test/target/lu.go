package target

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
)

// logicalUnit is one LUN's storage and identity.
type logicalUnit struct {
	number    uint64
	blockSize int
	blocks    uint64
	readOnly  bool
	serial    string
	naa       [16]byte // NAA-6 identifier, unique per target and LUN

	mu   sync.Mutex // serialises I/O on mem and file
	mem  []byte     // memory backing, nil for a file
	file *os.File
}

// newLogicalUnit opens or allocates the backing of cfg.
func newLogicalUnit(targetName string, cfg LUNConfig) (*logicalUnit, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lu := &logicalUnit{number: cfg.Number, blockSize: cfg.blockSize(), readOnly: cfg.ReadOnly, serial: cfg.Serial}
	size := int64(cfg.Size)
	if cfg.File == "" {
		lu.mem = make([]byte, size)
	} else {
		f, err := os.OpenFile(cfg.File, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("LUN %d: %w", cfg.Number, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("LUN %d: %w", cfg.Number, err)
		}
		if size == 0 {
			size = st.Size() / int64(lu.blockSize) * int64(lu.blockSize)
		} else if st.Size() < size {
			if err := f.Truncate(size); err != nil {
				f.Close()
				return nil, fmt.Errorf("LUN %d: extend %s: %w", cfg.Number, cfg.File, err)
			}
		}
		if size == 0 {
			f.Close()
			return nil, fmt.Errorf("LUN %d: file %s is empty and no size is configured", cfg.Number, cfg.File)
		}
		lu.file = f
	}
	lu.blocks = uint64(size) / uint64(lu.blockSize)
	// The identity derives from the target name and LUN number, so it is stable
	// across restarts and unique per LUN, as udev's by-id links and multipath
	// need.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", targetName, cfg.Number))
	if lu.serial == "" {
		lu.serial = fmt.Sprintf("%x", sum[:8])
	}
	// NAA 6 (IEEE Registered Extended): 4-bit NAA, 24-bit company id, then
	// 100 bits of vendor-specific identifier. The company id is a locally
	// administered one (0x000000 would be the IEEE's); the rest is the digest.
	copy(lu.naa[:], sum[8:24])
	lu.naa[0] = 0x60 | lu.naa[0]&0x0f
	return lu, nil
}

// size returns the capacity in bytes.
func (lu *logicalUnit) size() int64 { return int64(lu.blocks) * int64(lu.blockSize) }

// readAt reads len(b) bytes at byte offset off, which the caller has checked.
func (lu *logicalUnit) readAt(b []byte, off int64) error {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if lu.mem != nil {
		copy(b, lu.mem[off:])
		return nil
	}
	n, err := lu.file.ReadAt(b, off)
	if err == io.EOF && n == len(b) {
		err = nil
	}
	return err
}

// writeAt writes b at byte offset off, which the caller has checked.
func (lu *logicalUnit) writeAt(b []byte, off int64) error {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	if lu.mem != nil {
		copy(lu.mem[off:], b)
		return nil
	}
	_, err := lu.file.WriteAt(b, off)
	return err
}

// sync flushes a file backing to stable storage.
func (lu *logicalUnit) sync() error {
	if lu.file == nil {
		return nil
	}
	return lu.file.Sync()
}

// close releases the backing.
func (lu *logicalUnit) close() error {
	if lu.file == nil {
		return nil
	}
	return lu.file.Close()
}

// naaString returns the NAA identifier in hex, for logs.
func (lu *logicalUnit) naaString() string {
	return fmt.Sprintf("%016x%016x", binary.BigEndian.Uint64(lu.naa[:8]), binary.BigEndian.Uint64(lu.naa[8:]))
}
