package main

import (
	"fmt"
	"strings"
)

// This file is a getopt_long(3) in the shape of glibc's, because iscsiadm's
// grammar is whatever glibc's getopt_long makes of its option table: options
// and operands may be mixed (the operands are moved to the end as parsing
// goes, "permutation"), short options bundle (-lD), values attach or follow
// (-P1, -P 1, --op=new, --op new), long names may be abbreviated to any
// unambiguous prefix (--targ), and every mistake gets one of glibc's five
// diagnostics on stderr. iscsiadm also rescans argv from the start each time
// it meets -m (see verifyMode), and the permutation state that rescan leaves
// behind decides which later options the main loop still sees; reproducing
// that needs glibc's bookkeeping of where the skipped operands are, so this
// keeps it (firstNonopt, lastNonopt) rather than a simpler scan.

// argKind says whether a long option takes a value.
type argKind int

const (
	noArgument argKind = iota
	requiredArgument
	optionalArgument
)

// longOption is one entry of a long option table.
type longOption struct {
	name string
	arg  argKind
	val  int // what getopt returns for it: the equivalent short letter
}

// getopt is the parser state of glibc's struct _getopt_data.
type getopt struct {
	argv      []string // argv[0] is the program name; permuted in place
	shortOpts string   // letters; a letter followed by ':' takes a value
	longOpts  []longOption

	optind      int    // next argv element to look at; 0 asks for a restart
	nextchar    string // rest of a bundle of short options being read
	firstNonopt int    // operands skipped so far sit in argv[firstNonopt:lastNonopt]
	lastNonopt  int
	initialized bool

	optarg string // value of the option just returned; "" when it has none
	optopt int    // the option of the last error; 0 for a long option glibc could not name

	stderr *strings.Builder // where diagnostics go, as glibc writes them
}

// getoptEnd is what next returns when there are no more options; getoptError
// is what it returns for a mistake, after writing the diagnostic.
const (
	getoptEnd   = -1
	getoptError = '?'
)

// isOperand reports whether an argv element is not an option: it does not
// start with '-' or is "-" alone.
func isOperand(s string) bool { return len(s) < 2 || s[0] != '-' }

// diag writes one diagnostic line the way glibc does: argv[0], ": ", message.
func (g *getopt) diag(format string, args ...any) {
	fmt.Fprintf(g.stderr, "%s: "+format+"\n", append([]any{g.argv[0]}, args...)...)
}

// exchange moves the operands skipped so far, argv[firstNonopt:lastNonopt],
// after the options read since, argv[lastNonopt:optind], keeping the order
// within each group.
func (g *getopt) exchange() {
	bottom, middle, top := g.firstNonopt, g.lastNonopt, g.optind
	moved := make([]string, 0, top-bottom)
	moved = append(moved, g.argv[middle:top]...)
	moved = append(moved, g.argv[bottom:middle]...)
	copy(g.argv[bottom:top], moved)
	g.firstNonopt += g.optind - g.lastNonopt
	g.lastNonopt = g.optind
}

// next returns the next option letter (or long option's val), getoptError
// after a mistake, or getoptEnd.
func (g *getopt) next() int {
	argc := len(g.argv)
	if argc < 1 {
		return getoptEnd
	}
	g.optarg = ""
	if g.optind == 0 || !g.initialized {
		if g.optind == 0 {
			g.optind = 1
		}
		g.firstNonopt, g.lastNonopt = g.optind, g.optind
		g.nextchar = ""
		g.initialized = true
	}

	if g.nextchar == "" {
		// Advance to the next argv element, skipping operands.
		g.lastNonopt = min(g.lastNonopt, g.optind)
		g.firstNonopt = min(g.firstNonopt, g.optind)
		if g.firstNonopt != g.lastNonopt && g.lastNonopt != g.optind {
			g.exchange()
		} else if g.lastNonopt != g.optind {
			g.firstNonopt = g.optind
		}
		for g.optind < argc && isOperand(g.argv[g.optind]) {
			g.optind++
		}
		g.lastNonopt = g.optind

		// "--" ends the options; everything after it is an operand.
		if g.optind != argc && g.argv[g.optind] == "--" {
			g.optind++
			if g.firstNonopt != g.lastNonopt && g.lastNonopt != g.optind {
				g.exchange()
			} else if g.firstNonopt == g.lastNonopt {
				g.firstNonopt = g.optind
			}
			g.lastNonopt = argc
			g.optind = argc
		}
		if g.optind == argc {
			if g.firstNonopt != g.lastNonopt {
				g.optind = g.firstNonopt
			}
			return getoptEnd
		}
		arg := g.argv[g.optind]
		if arg[1] == '-' {
			g.nextchar = arg[2:]
			return g.longOption()
		}
		g.nextchar = arg[1:]
	}

	// A short option, possibly one of a bundle.
	c := g.nextchar[0]
	g.nextchar = g.nextchar[1:]
	if g.nextchar == "" {
		g.optind++
	}
	i := strings.IndexByte(g.shortOpts, c)
	if i < 0 || c == ':' || c == ';' {
		g.diag("invalid option -- '%c'", c)
		g.optopt = int(c)
		return getoptError
	}
	if i+1 < len(g.shortOpts) && g.shortOpts[i+1] == ':' {
		switch {
		case g.nextchar != "":
			g.optarg = g.nextchar
			g.optind++
		case g.optind == argc:
			g.diag("option requires an argument -- '%c'", c)
			g.optopt = int(c)
			g.nextchar = ""
			return getoptError
		default:
			g.optarg = g.argv[g.optind]
			g.optind++
		}
		g.nextchar = ""
	}
	return int(c)
}

// longOption reads the long option in g.nextchar (the text after "--"): an
// exact name wins, otherwise a prefix of exactly one option (or of several
// that are the same option in all but name).
func (g *getopt) longOption() int {
	text := g.nextchar
	name, value, hasValue := strings.Cut(text, "=")

	found := -1
	for i, o := range g.longOpts {
		if o.name == name {
			found = i
			break
		}
	}
	if found < 0 {
		var ambiguous []bool
		for i, o := range g.longOpts {
			if !strings.HasPrefix(o.name, name) {
				continue
			}
			if found < 0 {
				found = i
				continue
			}
			if first := g.longOpts[found]; first.arg != o.arg || first.val != o.val {
				if ambiguous == nil {
					ambiguous = make([]bool, len(g.longOpts))
					ambiguous[found] = true
				}
				ambiguous[i] = true
			}
		}
		if ambiguous != nil {
			var b strings.Builder
			for i, yes := range ambiguous {
				if yes {
					fmt.Fprintf(&b, " '--%s'", g.longOpts[i].name)
				}
			}
			g.diag("option '--%s' is ambiguous; possibilities:%s", text, b.String())
			g.nextchar = ""
			g.optind++
			g.optopt = 0
			return getoptError
		}
	}
	if found < 0 {
		g.diag("unrecognized option '--%s'", text)
		g.nextchar = ""
		g.optind++
		g.optopt = 0
		return getoptError
	}

	o := g.longOpts[found]
	g.optind++
	g.nextchar = ""
	switch {
	case hasValue && o.arg == noArgument:
		g.diag("option '--%s' doesn't allow an argument", o.name)
		g.optopt = o.val
		return getoptError
	case hasValue:
		g.optarg = value
	case o.arg == requiredArgument:
		if g.optind >= len(g.argv) {
			g.diag("option '--%s' requires an argument", o.name)
			g.optopt = o.val
			return getoptError
		}
		g.optarg = g.argv[g.optind]
		g.optind++
	}
	return o.val
}
