// Command goiscsiadm is goiscsi's drop-in for open-iscsi's iscsiadm: the same
// command line, output, exit codes and node database, talking to goiscsid. It
// is the command line of package initiator: argv in, stock's text out.
package main

import (
	"io"
	"os"
)

func main() {
	c, x := Parse(os.Args)
	if x != nil {
		io.WriteString(os.Stdout, x.Stdout)
		io.WriteString(os.Stderr, x.Stderr)
		os.Exit(int(x.Code))
	}
	os.Exit(int(run(c, os.Stdout, os.Stderr)))
}
