// Command goiscsi-iname makes iSCSI initiator names, as open-iscsi's
// iscsi-iname does: it prints a new random name (iqn.2004-10.com.goiscsi:<12 hex
// digits>). With -w FILE it makes sure FILE, an initiatorname.iscsi, names this
// host: a file that already has an InitiatorName= line is left alone, because
// the targets' ACLs know that name; a missing file, or one without the line
// (GenerateName=yes), gets a new name. It prints the name FILE holds. make
// install and the Debian package's postinst use -w, so the name is generated
// once per host.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/goiscsi/goiscsi/conf"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("goiscsi-iname", flag.ContinueOnError)
	fl.SetOutput(stderr)
	file := fl.String("w", "", "make sure `FILE` (an initiatorname.iscsi) holds an InitiatorName, generating one only if it has none")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "goiscsi-iname: unexpected argument %q\n", fl.Arg(0))
		fl.Usage()
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stdout, conf.NewInitiatorName(""))
		return 0
	}
	name, err := ensureName(*file)
	if err != nil {
		fmt.Fprintln(stderr, "goiscsi-iname:", err)
		return 1
	}
	fmt.Fprintln(stdout, name)
	return 0
}

// nameFileHeader is what stock's Debian package writes above the name: the
// warning holds for goiscsi as well.
const nameFileHeader = `## DO NOT EDIT OR REMOVE THIS FILE!
## If you remove this file, the iSCSI daemon will not start.
## If you change the InitiatorName, existing access control lists
## may reject this initiator.  The InitiatorName must be unique
## for each iSCSI initiator.  Do NOT duplicate iSCSI InitiatorNames.
`

// ensureName returns the name in path, writing a new one first if the file
// has none.
func ensureName(path string) (string, error) {
	name, _, err := conf.ReadInitiatorName(path)
	if err == nil {
		return name, nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, conf.ErrNoInitiatorName) {
		return "", err
	}
	name = conf.NewInitiatorName("")
	if err := writeFile(path, []byte(nameFileHeader+"InitiatorName="+name+"\n")); err != nil {
		return "", err
	}
	return name, nil
}

// writeFile replaces path with data, mode 0600, so that a crash leaves the old
// file or the new one, never a torn one.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".initiatorname-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
