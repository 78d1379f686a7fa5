package target

import (
	"slices"

	"github.com/goiscsi/goiscsi/pdu"
)

// writeTask is a WRITE whose data is still arriving. Data goes straight to
// the LU at its offset, so a task holds no buffer however large the write.
type writeTask struct {
	cmd   pdu.SCSICommand
	plan  *writePlan
	want  int64 // bytes to ask for with R2Ts: the CDB's length capped by EDTL
	fault *faultDef
	// Unsolicited data (§3.2.4.2): immediate data plus Data-Out with
	// TTT=ReservedTag up to unsolEnd; unsolNext is where the next must start.
	unsolNext   int64
	unsolEnd    int64
	unsolDataSN uint32
	unsolDone   bool
	nextR2T     int64 // offset the next R2T asks for
	r2tSN       uint32
	inFlight    []uint32 // TTTs of outstanding R2Ts
	writeError  bool
}

// burst is one outstanding R2T: the data it asked for and how much came.
type burst struct {
	task   *writeTask
	next   int64 // offset the next Data-Out must have (DataPDUInOrder)
	end    int64
	dataSN uint32
}

// maxTasks bounds the writes a connection waits on, immediate commands
// included (the CmdSN window bounds the others).
const maxTasks = 256

func (c *conn) scsiCommand(m *pdu.SCSICommand, p *pdu.PDU) {
	cdb := m.CDB[:]
	if len(p.AHS) > 0 {
		// Extended CDB AHS (type 1): the CDB bytes past 16.
		if p.AHS[2] != 1 || len(p.AHS) < 4 {
			c.log.Error("SCSI Command with an AHS that is not an Extended CDB", "pdu", p.Header.String())
			c.reject(pdu.RejectInvalidPDUField, &p.Header)
			return
		}
		n := int(p.AHS[0])<<8 | int(p.AHS[1]) - 1
		cdb = append(slices.Clone(cdb), p.AHS[4:4+min(n, len(p.AHS)-4)]...)
	}
	kind := kindAny
	switch {
	case m.Read:
		kind = kindRead
	case m.Write:
		kind = kindWrite
	}
	fault := c.takeCommandFault(kind)
	imm := p.Data
	switch {
	case len(imm) > 0 && (!m.Write || !c.params.immediateData):
		c.log.Error("immediate data the session does not allow", "itt", m.ITT, "bytes", len(imm))
		c.reject(pdu.RejectProtocolError, &p.Header)
		return
	case len(imm) > c.params.firstBurst || uint32(len(imm)) > m.ExpectedDataTransferLength:
		c.log.Error("immediate data exceeds FirstBurstLength or the expected length", "itt", m.ITT, "bytes", len(imm))
		c.reject(pdu.RejectProtocolError, &p.Header)
		return
	case c.tasks[m.ITT] != nil:
		c.log.Error("SCSI Command reuses the ITT of a task in progress", "itt", m.ITT)
		c.reject(pdu.RejectTaskInProgress, &p.Header)
		return
	}
	lunNum := m.LUN.Number()
	srv := c.srv
	srv.mu.Lock()
	lu := c.tgt.lus[lunNum]
	luns := c.tgt.lunNumbers()
	tpgt := c.sess.tpgt
	var ua *SenseCode
	if lu != nil && reportsUnitAttention(cdb[0]) {
		ua = c.sess.takeUA(lunNum)
	}
	if cdb[0] == opReportLUNs {
		c.sess.clearLUNsChanged()
	}
	srv.mu.Unlock()

	var res scsiResult
	if ua != nil {
		c.log.Info("reporting unit attention", "lun", lunNum, "sense", ua.String(), "itt", m.ITT)
		res = checkCondition(*ua)
	} else {
		res = emulate(&scsiRequest{
			cdb: cdb, lu: lu, luns: luns, relativePort: uint16(tpgt) + 1,
			takeSense: func() *SenseCode {
				srv.mu.Lock()
				defer srv.mu.Unlock()
				return c.sess.takeUA(lunNum)
			},
		})
	}
	if res.status != statusGood {
		c.log.Debug("command failed", "lun", lunNum, "cdb", cdb[0], "sense", res.sense)
	}
	if res.write != nil {
		if len(c.tasks) >= maxTasks {
			c.log.Error("too many writes in progress", "limit", maxTasks)
			c.reject(pdu.RejectLongOperation, &p.Header)
			return
		}
		c.startWrite(m, imm, res.write, fault)
		return
	}
	c.delay()
	c.respond(m, res, fault)
}

// respond sends a command's data and status.
func (c *conn) respond(m *pdu.SCSICommand, res scsiResult, f *faultDef) {
	sf, ok := c.beforeStatus(f, m)
	if !ok {
		return
	}
	edtl := int(m.ExpectedDataTransferLength)
	data := res.data
	st := pdu.SCSIResponse{ITT: m.ITT, Status: res.status}
	if res.status == statusGood {
		switch {
		case len(data) > edtl:
			st.Overflow, st.Residual = true, uint32(len(data)-edtl)
			data = data[:edtl]
		case len(data) < edtl && !m.Write:
			st.Underflow, st.Residual = true, uint32(edtl-len(data))
		}
	}
	if f != nil && f.name == "datain-no-data" {
		data, st.Underflow, st.Residual = nil, false, 0
	}
	var sense []byte
	if len(res.sense) > 0 {
		sense = pdu.AppendSenseSegment(nil, res.sense)
	}
	if f != nil && f.name == "sense-length-mismatch" {
		st.Status = statusCheckCondition
		sense = pdu.AppendSenseSegment(nil, pdu.AppendFixedSense(nil, pdu.IllegalRequest, 0x24, 0))
		sense[0], sense[1] = 0, 200
	}
	dataSN := c.sendDataIn(m, data, &st, sense == nil, f, sf)
	if dataSN < 0 {
		return // the status went in the last Data-In
	}
	st.ExpDataSN = uint32(dataSN)
	c.sendStatus(&st, sense, sf)
}

// sendStatus sends a status PDU as the fault alters it.
func (c *conn) sendStatus(m pdu.Message, data []byte, sf statusFault) {
	for i := 0; i < 1+btoi(sf.twice); i++ {
		if sf.hdr == nil && sf.wire == nil {
			c.send(m, data, true)
		} else {
			c.sendCustom(m, data, true, sf.hdr, sf.wire)
		}
	}
	if sf.closeAfter {
		c.close("fault closes the connection after the status")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sendDataIn sends data in Data-In PDUs of at most the initiator's
// MaxRecvDataSegmentLength, in sequences of at most MaxBurstLength. When
// statusOK allows, the last one carries the status and sendDataIn returns -1;
// otherwise it returns how many Data-In PDUs it sent.
func (c *conn) sendDataIn(m *pdu.SCSICommand, data []byte, st *pdu.SCSIResponse, statusOK bool, f *faultDef, sf statusFault) int {
	if len(data) == 0 {
		return 0
	}
	collapse := statusOK && st.Status == statusGood && !c.tgt.splitStatus
	maxSeg, maxBurst := max(c.params.maxXmit, 512), max(c.params.maxBurst, 512)
	n := 0
	for off := 0; off < len(data); n++ {
		seg := min(maxSeg, len(data)-off, maxBurst-off%maxBurst)
		last := off+seg == len(data)
		din := pdu.DataIn{
			LUN: m.LUN, ITT: m.ITT, TTT: pdu.ReservedTag, DataSN: uint32(n), BufferOffset: uint32(off),
			Final: last || (off+seg)%maxBurst == 0,
		}
		if n == 0 && f != nil {
			switch f.name {
			case "datain-bad-offset":
				din.BufferOffset = m.ExpectedDataTransferLength + 4096
			case "datain-bad-datasn":
				din.DataSN = 7
			}
		}
		chunk := data[off : off+seg]
		off += seg
		// bad-data-digest spoils the first Data-In, whether or not it
		// carries the status.
		var spoil func([]byte) []byte
		if n == 0 && f != nil && f.name == "bad-data-digest" {
			if !c.params.digests.Data {
				c.log.Warn("fault bad-data-digest needs DataDigest=CRC32C; sending a correct PDU")
			}
			spoil = func(b []byte) []byte {
				if c.params.digests.Data {
					b[len(b)-1] ^= 0xff
				}
				return b
			}
		}
		if last && collapse {
			din.HasStatus, din.Status = true, st.Status
			din.Overflow, din.Underflow, din.Residual = st.Overflow, st.Underflow, st.Residual
			if f != nil && f.name == "datain-overflow" {
				din.HasStatus, din.Final = false, false
				c.send(&din, chunk, false)
				extra := pdu.DataIn{LUN: m.LUN, ITT: m.ITT, TTT: pdu.ReservedTag, DataSN: uint32(n + 1),
					BufferOffset: uint32(off), Final: true, HasStatus: true, Status: st.Status}
				c.sendStatus(&extra, make([]byte, 512), sf)
				return -1
			}
			if spoil != nil {
				sf.wire = spoil
			}
			c.sendStatus(&din, chunk, sf)
			return -1
		}
		if spoil != nil {
			c.sendCustom(&din, chunk, false, nil, spoil)
			continue
		}
		c.send(&din, chunk, false)
	}
	return n
}

// startWrite begins a WRITE: immediate data is written now, the rest comes as
// unsolicited Data-Out and then through R2Ts.
func (c *conn) startWrite(m *pdu.SCSICommand, imm []byte, plan *writePlan, f *faultDef) {
	t := &writeTask{cmd: *m, plan: plan, fault: f}
	t.want = min(plan.length, int64(m.ExpectedDataTransferLength))
	if f != nil && f.name == "datain-for-write" {
		sf, _ := c.beforeStatus(f, m)
		c.sendStatus(&pdu.SCSIResponse{ITT: m.ITT, Status: statusGood}, nil, sf)
		return
	}
	if t.want == 0 {
		c.finishWrite(t)
		return
	}
	c.tasks[m.ITT] = t
	c.store(t, 0, imm)
	t.unsolNext = int64(len(imm))
	t.unsolEnd = t.unsolNext
	if !c.params.initialR2T {
		// The initiator's allowance follows EDTL, not the CDB: data past the
		// CDB's length is taken and dropped.
		t.unsolEnd = max(t.unsolEnd, min(int64(c.params.firstBurst), int64(m.ExpectedDataTransferLength)))
	}
	// Linux marks the command Final when no unsolicited Data-Out follows.
	t.unsolDone = t.unsolNext >= t.unsolEnd || m.Final && t.unsolNext > 0 && c.params.initialR2T
	if t.unsolDone {
		t.nextR2T = t.unsolNext
	}
	c.advanceWrite(t)
}

// store writes received data at the task's offset off; bytes past the
// CDB's transfer length (EDTL larger than it) are not written (SAM: the
// residual is not transferred to the medium).
func (c *conn) store(t *writeTask, off int64, b []byte) {
	if off >= t.plan.length {
		return
	}
	b = b[:min(int64(len(b)), t.plan.length-off)]
	if len(b) == 0 {
		return
	}
	if err := t.plan.lu.writeAt(b, t.plan.offset+off); err != nil {
		c.log.Error("write to backing failed", "lun", t.plan.lu.number, "err", err)
		t.writeError = true
	}
}

// advanceWrite sends R2Ts while the window allows, or the status once all
// data is in.
func (c *conn) advanceWrite(t *writeTask) {
	if !t.unsolDone {
		return
	}
	if t.nextR2T >= t.want && len(t.inFlight) == 0 {
		delete(c.tasks, t.cmd.ITT)
		c.finishWrite(t)
		return
	}
	for len(t.inFlight) < max(c.params.maxOutstanding, 1) && t.nextR2T < t.want {
		n := min(int64(max(c.params.maxBurst, 512)), t.want-t.nextR2T)
		r2t := pdu.R2T{
			LUN: t.cmd.LUN, ITT: t.cmd.ITT, TTT: c.newTTT(), R2TSN: t.r2tSN,
			BufferOffset: uint32(t.nextR2T), DesiredDataTransferLength: uint32(n),
		}
		if t.fault != nil && t.r2tSN == 0 {
			switch t.fault.name {
			case "r2t-bad-offset":
				r2t.BufferOffset = t.cmd.ExpectedDataTransferLength + 4096
			case "r2t-zero-length":
				r2t.DesiredDataTransferLength = 0
			}
		}
		c.bursts[r2t.TTT] = &burst{task: t, next: t.nextR2T, end: t.nextR2T + n}
		t.inFlight = append(t.inFlight, r2t.TTT)
		t.nextR2T += n
		t.r2tSN++
		c.send(&r2t, nil, false)
	}
}

// finishWrite sends a write's status.
func (c *conn) finishWrite(t *writeTask) {
	st := pdu.SCSIResponse{ITT: t.cmd.ITT, Status: statusGood}
	var sense []byte
	if t.writeError {
		st.Status = statusCheckCondition
		sense = pdu.AppendSenseSegment(nil, pdu.AppendFixedSense(nil, senseWriteError.Key, senseWriteError.ASC, senseWriteError.ASCQ))
	} else if edtl := int64(t.cmd.ExpectedDataTransferLength); t.plan.length > edtl {
		st.Overflow, st.Residual = true, uint32(t.plan.length-edtl)
	} else if t.plan.length < edtl {
		st.Underflow, st.Residual = true, uint32(edtl-t.plan.length)
	}
	f := t.fault
	if f != nil && (f.name == "r2t-bad-offset" || f.name == "r2t-zero-length") {
		f = nil // already fired
	}
	c.delay()
	sf, ok := c.beforeStatus(f, &t.cmd)
	if !ok {
		return
	}
	c.sendStatus(&st, sense, sf)
}

// dataOut takes one Data-Out PDU.
func (c *conn) dataOut(p *pdu.PDU) {
	var m pdu.DataOut
	if err := m.Decode(&p.Header); err != nil {
		c.reject(pdu.RejectInvalidPDUField, &p.Header)
		return
	}
	t := c.tasks[m.ITT]
	if t == nil {
		// Data for a task that ended early (an error status, an abort):
		// nothing to do with it.
		c.log.Debug("Data-Out for no task in progress; discarded", "itt", m.ITT)
		return
	}
	off, n := int64(m.BufferOffset), int64(len(p.Data))
	if m.TTT == pdu.ReservedTag {
		if t.unsolDone || off != t.unsolNext || off+n > t.unsolEnd || m.DataSN != t.unsolDataSN {
			c.log.Error("unsolicited Data-Out outside the first burst or out of order",
				"itt", m.ITT, "offset", off, "bytes", n, "datasn", m.DataSN, "expected_offset", t.unsolNext,
				"expected_datasn", t.unsolDataSN, "first_burst_end", t.unsolEnd)
			c.reject(pdu.RejectProtocolError, &p.Header)
			return
		}
		c.store(t, off, p.Data)
		t.unsolNext += n
		t.unsolDataSN++
		if m.Final || t.unsolNext == t.unsolEnd {
			t.unsolDone, t.nextR2T = true, t.unsolNext
		}
		c.advanceWrite(t)
		return
	}
	b := c.bursts[m.TTT]
	if b == nil || b.task != t || off != b.next || off+n > b.end || m.DataSN != b.dataSN {
		c.log.Error("Data-Out does not match an outstanding R2T", "itt", m.ITT, "ttt", m.TTT, "offset", off, "bytes", n, "datasn", m.DataSN)
		c.reject(pdu.RejectProtocolError, &p.Header)
		return
	}
	c.store(t, off, p.Data)
	b.next += n
	b.dataSN++
	if b.next == b.end {
		delete(c.bursts, m.TTT)
		t.inFlight = slices.DeleteFunc(t.inFlight, func(x uint32) bool { return x == m.TTT })
		c.advanceWrite(t)
	}
}

// abortTasks drops the writes in progress that match (their status is never
// sent, as an aborted task gets none).
func (c *conn) abortTasks(match func(*writeTask) bool) int {
	n := 0
	for itt, t := range c.tasks {
		if !match(t) {
			continue
		}
		for _, ttt := range t.inFlight {
			delete(c.bursts, ttt)
		}
		delete(c.tasks, itt)
		n++
	}
	return n
}

// taskMgmt answers a Task Management Function Request (§11.5). Reads and
// other commands complete before the next PDU is read, so only writes
// waiting for data can be aborted.
func (c *conn) taskMgmt(m *pdu.TaskMgmtRequest) {
	lunNum := m.LUN.Number()
	c.srv.mu.Lock()
	_, lunExists := c.tgt.lus[lunNum]
	c.srv.mu.Unlock()
	resp := pdu.TaskMgmtResponse{ITT: m.ITT}
	switch m.Function {
	case pdu.TMFAbortTask:
		t := c.tasks[m.ReferencedTaskTag]
		switch {
		case t != nil:
			c.abortTasks(func(x *writeTask) bool { return x == t })
		case serialBefore(m.RefCmdSN, m.CmdSN) && c.inWindow(m.RefCmdSN):
			// §11.5.1 b: the task is gone but its CmdSN was valid: consider it
			// received and report success.
		default:
			resp.Response = pdu.TMFTaskDoesNotExist
		}
	case pdu.TMFAbortTaskSet, pdu.TMFClearTaskSet, pdu.TMFLogicalUnitReset:
		if !lunExists {
			resp.Response = pdu.TMFLUNDoesNotExist
			break
		}
		c.abortTasks(func(t *writeTask) bool { return t.cmd.LUN.Number() == lunNum })
		if m.Function == pdu.TMFLogicalUnitReset {
			c.srv.resetLUN(c.tgt, lunNum, c.sess)
		}
	case pdu.TMFTargetWarmReset:
		c.abortTasks(func(*writeTask) bool { return true })
		c.srv.mu.Lock()
		luns := c.tgt.lunNumbers()
		c.srv.mu.Unlock()
		for _, n := range luns {
			c.srv.resetLUN(c.tgt, n, c.sess)
		}
	case pdu.TMFClearACA, pdu.TMFTargetColdReset:
		resp.Response = pdu.TMFNotSupported
	case pdu.TMFTaskReassign:
		resp.Response = pdu.TMFReassignNotSupported // needs ErrorRecoveryLevel 2
	default:
		resp.Response = pdu.TMFRejected
	}
	c.log.Info("task management", "function", m.Function, "lun", lunNum, "ref_itt", m.ReferencedTaskTag, "response", resp.Response)
	c.send(&resp, nil, true)
}

// serialBefore compares sequence numbers with RFC 1982 serial arithmetic.
func serialBefore(a, b uint32) bool { return a != b && b-a < 1<<31 }

// inWindow reports whether a CmdSN lies in the current command window
// [ExpCmdSN, MaxCmdSN].
func (c *conn) inWindow(sn uint32) bool {
	exp, max := c.sess.cmdWindow()
	return sn-exp <= max-exp
}

// resetLUN sets BUS DEVICE RESET FUNCTION OCCURRED on the LUN for the
// target's other sessions (the one that asked for the reset knows). Writes
// of other sessions are left to finish: a test target has no need to cut
// them short.
func (s *Server) resetLUN(t *target, lun uint64, by *iscsiSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range t.sessions {
		if ss != by {
			ss.addUA(lun, senseBusDeviceReset)
		}
	}
}
