// Command goiscsiadm is goiscsi's drop-in for open-iscsi's iscsiadm: the same
// command line, output, exit codes and node database, talking to goiscsid.
package main

import (
	"fmt"
	"os"
)

func main() {
	c, x := Parse(os.Args)
	if x == nil {
		x = run(c)
	}
	fmt.Fprint(os.Stdout, x.Stdout)
	fmt.Fprint(os.Stderr, x.Stderr)
	os.Exit(int(x.Code))
}
