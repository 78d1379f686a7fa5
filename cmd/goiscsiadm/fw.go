package main

import (
	"errors"
	"io"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/initiator"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// firmware is -m fw: print each boot target of the firmware's tables, or
// (-l) log in to each through goiscsid with the firmware login defaults and
// -n/-v on top. As stock's exec_fw_op, a login that fails is reported and
// does not change the exit status: only reading the tables and merging the
// parameters can fail the command.
func (e *env) firmware(c *Command) iscsierr.Code {
	boots, err := e.c.FirmwareTargets(e.warnFirmware)
	if err != nil {
		return e.failWith(err)
	}
	if !c.Login {
		for _, b := range boots {
			io.WriteString(e.stdout, e.c.FirmwareText(b, false))
		}
		return iscsierr.Success
	}
	var params [][2]string
	for _, p := range c.Params {
		params = append(params, [2]string{p.Name, p.Value})
	}
	for _, b := range boots {
		r, err := e.c.FirmwareLoginRecord(b, params)
		if err != nil {
			e.failWith(err)
			return e.fail(iscsierr.CodeOf(err), "Could not merge user params")
		}
		e.loginEach([]*conf.Record{r})
	}
	return iscsierr.Success
}

// discoverFirmware is -m discovery -t fw: a node record of each boot target,
// stored with node.discovery_type fw as -o says (new, update and delete
// stale ones when it says nothing), printed as discovery prints what it
// found, and logged in to with -l.
func (e *env) discoverFirmware(c *Command) iscsierr.Code {
	op := c.Op
	if op == 0 {
		op = OpNew | OpUpdate | OpDelete // stock's default
	}
	recs, err := e.c.DiscoverFirmware(e.ctx, initiator.FirmwareDiscoverOptions{Ifaces: c.Ifaces,
		New: op&OpNew != 0, Update: op&OpUpdate != 0, DeleteStale: op&OpDelete != 0}, e.warnFirmware)
	if err != nil {
		return e.failWith(err)
	}
	var nodes []NodeSummary
	for _, r := range recs {
		nodes = append(nodes, summary(r))
	}
	text, x := DiscoveredText(nodes, c.PrintLevel)
	if x != nil {
		return e.finish(text, x)
	}
	io.WriteString(e.stdout, text)
	if c.Login {
		return e.loginRecords(recs)
	}
	return iscsierr.Success
}

// warnFirmware prints what reading the boot tables or binding the records
// skipped, in stock's words when it has them, and goes on.
func (e *env) warnFirmware(err error) {
	var ie *iscsierr.Error
	if errors.As(err, &ie) {
		e.errorf("%s", ie.Message)
		return
	}
	e.errorf("%v", err)
}
