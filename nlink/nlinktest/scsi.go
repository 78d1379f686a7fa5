package nlinktest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/goiscsi/goiscsi/nlink"
	"github.com/goiscsi/goiscsi/pdu"
)

// What iscsi_tcp does for the SCSI midlayer on a started connection: it runs
// SCSI commands, checks the target's answers as libiscsi does (a violation is
// a CONN_ERROR with libiscsi's code), and pings a quiet target, failing the
// connection when a ping goes unanswered.

// Result is what a SCSI command came back with.
type Result struct {
	Status uint8
	// Sense is the sense data of a CHECK CONDITION.
	Sense []byte
	// Data is the data read, short by the residual of an underflow.
	Data      []byte
	Residual  uint32
	Underflow bool
	Overflow  bool
}

// ErrBadTarget is a command the kernel completes with DID_BAD_TARGET: the
// target's status was malformed without breaking the connection (sense data
// shorter than its length says).
var ErrBadTarget = errors.New("nlinktest: malformed status from the target (DID_BAD_TARGET)")

// task is one SCSI command in flight.
type task struct {
	itt       uint32
	lun       pdu.LUN
	write     []byte // the data of a write
	data      []byte // the buffer of a read
	expDataSN uint32
	r2tSN     uint32
	done      chan taskResult // buffered: completed once, by whoever removes the task
}

type taskResult struct {
	res *Result
	err error
}

// Command runs one SCSI command on connection 0 of session sid: write holds a
// write's data (sent as immediate data and unsolicited Data-Out as the
// negotiated ImmediateData, InitialR2T and FirstBurstLength allow, the rest on
// R2Ts), readLen is how much a read expects. A response that breaks the
// protocol fails the connection with a CONN_ERROR, and Command returns an error
// naming it; ctx ending is a command timeout (the SCSI midlayer would abort the
// task), after which the task is forgotten.
func (k *Kernel) Command(ctx context.Context, sid uint32, lun uint64, cdb []byte, write []byte, readLen int) (*Result, error) {
	if len(cdb) > 16 {
		return nil, errors.New("nlinktest: CDBs longer than 16 bytes are not supported")
	}
	k.mu.Lock()
	s := k.sessions[sid]
	var c *conn
	if s != nil {
		c = s.conns[0]
	}
	if c == nil || !c.started || c.failed {
		k.mu.Unlock()
		return nil, fmt.Errorf("nlinktest: session %d has no working connection", sid)
	}
	c.nextTask++
	t := &task{itt: s.age<<28 | 0x0100_0000 | c.nextTask&0x00ff_ffff, lun: pdu.NewLUN(lun), done: make(chan taskResult, 1)}
	cmd := pdu.SCSICommand{Final: true, Attr: pdu.AttrSimple, LUN: t.lun, ITT: t.itt, CmdSN: s.cmdSN, ExpStatSN: c.expStatSN}
	s.cmdSN++
	copy(cmd.CDB[:], cdb)
	maxXmit := paramInt(c.params, nlink.ParamMaxXmitDLength, pdu.DefaultMaxRecvDataSegmentLength)
	var imm []byte
	unsolEnd := 0
	switch {
	case write != nil:
		t.write = write
		cmd.Write, cmd.ExpectedDataTransferLength = true, uint32(len(write))
		firstBurst := paramInt(s.params, nlink.ParamFirstBurst, 65536)
		if s.params[nlink.ParamImmDataEn] == "1" {
			imm = write[:min(len(write), firstBurst, maxXmit)]
		}
		unsolEnd = len(imm)
		if s.params[nlink.ParamInitialR2TEn] == "0" {
			unsolEnd = min(len(write), firstBurst)
		}
		cmd.Final = unsolEnd == len(imm)
	case readLen > 0:
		t.data = make([]byte, readLen)
		cmd.Read, cmd.ExpectedDataTransferLength = true, uint32(readLen)
	}
	c.tasks[t.itt] = t
	expStatSN := c.expStatSN
	k.mu.Unlock()

	p := &pdu.PDU{Data: imm}
	cmd.Encode(&p.Header)
	err := c.write(p)
	for off, sn := len(imm), uint32(0); err == nil && off < unsolEnd; sn++ {
		n := min(unsolEnd-off, maxXmit)
		err = c.write(dataOut(t, pdu.ReservedTag, expStatSN, sn, off, n, off+n == unsolEnd))
		off += n
	}
	if err != nil {
		k.forget(c, t)
		return nil, fmt.Errorf("nlinktest: send SCSI command: %w", err)
	}
	select {
	case r := <-t.done:
		return r.res, r.err
	case <-ctx.Done():
		if k.forget(c, t) {
			return nil, fmt.Errorf("nlinktest: SCSI command 0x%02x timed out: %w", cdb[0], context.Cause(ctx))
		}
		r := <-t.done
		return r.res, r.err
	}
}

// forget removes t if it is still in flight and reports whether it was.
func (k *Kernel) forget(c *conn, t *task) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.tasks[t.itt] != t {
		return false
	}
	delete(c.tasks, t.itt)
	return true
}

// finish completes t once: the caller that removes it from c.tasks delivers.
func (k *Kernel) finish(c *conn, t *task, res *Result, err error) {
	if k.forget(c, t) {
		t.done <- taskResult{res, err}
	}
}

// failTasksLocked ends every command in flight on c with err; k.mu is held.
func failTasksLocked(c *conn, err error) {
	for itt, t := range c.tasks {
		delete(c.tasks, itt)
		t.done <- taskResult{err: err}
	}
}

func dataOut(t *task, ttt, expStatSN, dataSN uint32, off, n int, final bool) *pdu.PDU {
	p := &pdu.PDU{Data: t.write[off : off+n]}
	(&pdu.DataOut{Final: final, LUN: t.lun, ITT: t.itt, TTT: ttt, ExpStatSN: expStatSN, DataSN: dataSN,
		BufferOffset: uint32(off)}).Encode(&p.Header)
	return p
}

func (c *conn) write(p *pdu.PDU) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Write(p)
}

func paramInt(params map[nlink.Param]string, p nlink.Param, def int) int {
	if n, err := strconv.Atoi(params[p]); err == nil && n > 0 {
		return n
	}
	return def
}

// taskPDU handles a SCSI Response, Data-In or R2T as libiscsi does; a
// non-zero result is a connection error.
func (k *Kernel) taskPDU(c *conn, p *pdu.PDU) nlink.ConnError {
	k.mu.Lock()
	t := c.tasks[p.Header.ITT()]
	maxXmit := paramInt(c.params, nlink.ParamMaxXmitDLength, pdu.DefaultMaxRecvDataSegmentLength)
	expStatSN := c.expStatSN
	k.mu.Unlock()
	if t == nil {
		return nlink.ErrBadITT
	}
	switch p.Header.Opcode() {
	case pdu.OpDataIn:
		var d pdu.DataIn
		d.Decode(&p.Header)
		if d.DataSN != t.expDataSN {
			return nlink.ErrDataSN
		}
		t.expDataSN++
		if int(d.BufferOffset)+len(p.Data) > len(t.data) {
			return nlink.ErrDataOffset
		}
		copy(t.data[d.BufferOffset:], p.Data)
		if d.HasStatus {
			k.finish(c, t, t.result(d.Status, d.Residual, d.Underflow, d.Overflow), nil)
		}
	case pdu.OpR2T:
		var r pdu.R2T
		r.Decode(&p.Header)
		off, n := int(r.BufferOffset), int(r.DesiredDataTransferLength)
		switch {
		case len(p.Data) > 0:
			return nlink.ErrDataLen
		case len(p.AHS) > 0:
			return nlink.ErrAHSLen
		case t.write == nil:
			return nlink.ErrProto // an R2T for a read
		case r.R2TSN != t.r2tSN:
			return nlink.ErrR2TSN
		case n == 0, off+n > len(t.write):
			return nlink.ErrDataLen
		}
		t.r2tSN++
		for end, sn := off+n, uint32(0); off < end; sn++ {
			seg := min(end-off, maxXmit)
			if c.write(dataOut(t, r.TTT, expStatSN, sn, off, seg, off+seg == end)) != nil {
				return nlink.ErrXmitFailed
			}
			off += seg
		}
	case pdu.OpSCSIResponse:
		var r pdu.SCSIResponse
		r.Decode(&p.Header)
		res := t.result(r.Status, r.Residual, r.Underflow, r.Overflow)
		var err error
		if len(p.Data) > 0 {
			if len(p.Data) < 2 || int(binary.BigEndian.Uint16(p.Data)) > len(p.Data)-2 {
				err = fmt.Errorf("%w: %d bytes of sense data where %d are announced", ErrBadTarget, len(p.Data)-2, binary.BigEndian.Uint16(p.Data))
				res = nil
			} else {
				res.Sense = p.Data[2 : 2+binary.BigEndian.Uint16(p.Data)]
			}
		}
		k.finish(c, t, res, err)
	}
	return 0
}

func (t *task) result(status uint8, residual uint32, under, over bool) *Result {
	r := &Result{Status: status, Data: t.data, Residual: residual, Underflow: under, Overflow: over}
	if under && int(residual) <= len(t.data) {
		r.Data = t.data[:len(t.data)-int(residual)]
	}
	return r
}

// pinger sends a NOP-Out ping after recv of silence from the target and fails
// the connection with ISCSI_ERR_NOP_TIMEDOUT when the answer takes longer than
// ping, as the kernel does with ping_tmo and recv_tmo.
func (k *Kernel) pinger(s *session, c *conn, sock net.Conn, done chan struct{}, recv, ping time.Duration) {
	defer k.wg.Done()
	tick := time.NewTicker(min(recv, ping) / 4)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-k.closed:
			return
		case now := <-tick.C:
			k.mu.Lock()
			if c.sock != sock || c.stopped || c.failed {
				k.mu.Unlock()
				return
			}
			if !c.pingSent.IsZero() {
				// As libiscsi: the connection is dead only when nothing
				// at all came for recv+ping, not when the answer to the
				// ping is late behind other PDUs (a target flooding
				// NOP-Ins is alive).
				late := now.Sub(c.lastRecv) >= recv+ping
				k.mu.Unlock()
				if late {
					k.connError(s, c, sock, nlink.ErrNOPTimedOut)
					return
				}
				continue
			}
			if now.Sub(c.lastRecv) < recv {
				k.mu.Unlock()
				continue
			}
			c.pingSent = now
			p := &pdu.PDU{}
			(&pdu.NOPOut{Immediate: true, ITT: s.age<<28 | pingTag, TTT: pdu.ReservedTag, CmdSN: s.cmdSN, ExpStatSN: c.expStatSN}).Encode(&p.Header)
			k.mu.Unlock()
			c.write(p)
		}
	}
}

// Task tags of the kernel's own PDUs, below the age in the top four bits.
const (
	loginTag = 1
	pingTag  = 2
)
