package main

import (
	"fmt"
	"os"
)

// main is a placeholder until goiscsiadm is wired to goiscsid and the node
// database: it parses the command line, answers what parsing alone decides
// (-V, -h, mistakes, unsupported features) and refuses the rest.
func main() {
	c, e := Parse(os.Args)
	if e == nil {
		fmt.Fprint(os.Stderr, c.Warnings)
		e = Errorf(ExitOpNotSupp, "running commands is not wired up yet")
	}
	fmt.Fprint(os.Stdout, e.Stdout)
	fmt.Fprint(os.Stderr, e.Stderr)
	os.Exit(int(e.Code))
}
