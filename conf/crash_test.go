package conf

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashWriterEnv makes the test binary a child that saves node records until it
// is killed: "update ROOT" alternates two versions of one record, "convert ROOT"
// converts one old-layout record once.
const crashWriterEnv = "GOISCSI_CONF_CRASH_WRITER"

// crashRecords are the old and the new version of the record: different in
// value and in length, so that a file holding parts of both is told apart.
// Both set goiscsi's own key, which lives in a file of its own, to what is not
// its default, so that keys that failed to apply show.
func crashRecords() (old, new *Record) {
	old = NewNodeRecord(nil, "iqn.2026-11.dev.goiscsi:crash", "127.0.0.1", 3260, 1, "default")
	old.Set("node.session.autoscan_en", "No")
	new = old.Clone()
	new.Set("node.session.auth.authmethod", "CHAP")
	new.Set("node.session.auth.username", strings.Repeat("u", 200))
	new.Set("node.session.auth.password", strings.Repeat("p", 200))
	return old, new
}

func runCrashWriter(mode, root string) {
	db := &DB{Root: root}
	old, new := crashRecords()
	fmt.Println("ready")
	switch mode {
	case "update":
		for i := 0; ; i++ {
			r := old
			if i%2 == 1 {
				r = new
			}
			if err := db.SaveNode(r); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	case "convert":
		if err := db.SaveNode(new); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("done")
		time.Sleep(time.Hour) // until killed
	}
}

// A node record update killed (SIGKILL) at random moments, in the current
// layout and while converting an old-layout record, leaves the old record or
// the new one, byte for byte, never a torn one; the temporary files it leaves
// are not taken for records. goiscsi's own keys always apply to the record
// left, whichever it is: never iscsid.conf's default in their place.
func TestSaveNodeKilledMidWrite(t *testing.T) {
	if w := os.Getenv(crashWriterEnv); w != "" {
		mode, root, _ := strings.Cut(w, " ")
		runCrashWriter(mode, root)
		return
	}
	if testing.Short() {
		t.Skip("kills 300 writers")
	}
	old, new := crashRecords()
	oldText, _ := old.MarshalText()
	newText, _ := new.MarshalText()
	for _, tc := range []struct {
		mode  string
		kills int
		// within is how long after the writer is ready the kill may come
		// (for convert: measured by the first kill).
		within time.Duration
	}{
		{"update", 200, 20 * time.Millisecond},
		{"convert", 100, 0},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			root := t.TempDir()
			var warnings []string
			db := &DB{Root: root, Warn: func(err error) { warnings = append(warnings, err.Error()) }}
			path := filepath.Join(db.nodesDir(), stockPath(old.ID()))
			oldLayout := filepath.Join(db.nodesDir(), old.ID().Target, portalDir("127.0.0.1", 3260, 1))
			var sawOld, sawNew, leftovers int
			if tc.mode == "update" {
				if err := db.SaveNode(old); err != nil {
					t.Fatal(err)
				}
			}
			for kill := 0; kill < tc.kills; kill++ {
				if tc.mode == "convert" {
					os.RemoveAll(db.nodesDir())
					os.MkdirAll(filepath.Dir(oldLayout), 0o700)
					if err := os.WriteFile(oldLayout, oldText, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				cmd := exec.Command(os.Args[0], "-test.run=^TestSaveNodeKilledMidWrite$")
				cmd.Env = append(os.Environ(), crashWriterEnv+"="+tc.mode+" "+root)
				stdout, _ := cmd.StdoutPipe()
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				lines := bufio.NewScanner(stdout)
				if !lines.Scan() || lines.Text() != "ready" {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("writer did not start: %q %s", lines.Text(), stderr.String())
				}
				// The first conversion runs to its end: twice its time
				// bounds the kills, so that they land before and after
				// its end on a fast machine and on a loaded one alike.
				if tc.mode == "convert" && kill == 0 {
					start := time.Now()
					if !lines.Scan() || lines.Text() != "done" {
						cmd.Process.Kill()
						cmd.Wait()
						t.Fatalf("writer did not convert: %q %s", lines.Text(), stderr.String())
					}
					tc.within = max(2*time.Since(start), time.Millisecond)
				}
				time.Sleep(rand.N(tc.within))
				cmd.Process.Signal(syscall.SIGKILL)
				err := cmd.Wait()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
					t.Fatalf("writer ended by itself: %v %s", err, stderr.String())
				}

				// The record is the old or the new one, where the layout
				// puts it.
				file := path
				if isFile(oldLayout) {
					file = oldLayout
				}
				got, err := os.ReadFile(file)
				// The old-layout file, which ancient stock wrote, has
				// no own keys.
				wantOwn := "No"
				switch {
				case err != nil:
					t.Fatalf("kill %d: the record is gone: %v", kill, err)
				case bytes.Equal(got, oldText):
					sawOld++
					if file == oldLayout {
						wantOwn = "Yes"
					}
				case bytes.Equal(got, newText):
					sawNew++
				default:
					t.Fatalf("kill %d: torn record (%d bytes):\n%s", kill, len(got), got)
				}
				warnings = nil
				all, err := db.Nodes()
				if err != nil || len(all) != 1 || all[0].ID() != old.ID() {
					t.Fatalf("kill %d: listing after the kill: %d records, %v", kill, len(all), err)
				}
				if own := all[0].Get("node.session.autoscan_en"); own != wantOwn || len(warnings) != 0 {
					t.Fatalf("kill %d: autoscan_en %q, want %q; warnings %q", kill, own, wantOwn, warnings)
				}
				leftovers = countHidden(t, db.nodesDir())
			}
			t.Logf("%d kills: %d left the old record, %d the new one; %d temporary files left behind, none listed",
				tc.kills, sawOld, sawNew, leftovers)
			if sawOld == 0 || sawNew == 0 {
				t.Errorf("the kills never caught the writer between the two versions: old %d, new %d", sawOld, sawNew)
			}
			// Leftovers old enough to be no writer's work in progress go at
			// the next save, the own keys' included.
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), ".") {
					long := time.Now().Add(-time.Hour)
					os.Chtimes(p, long, long)
				}
				return nil
			})
			if err := db.SaveNode(new); err != nil {
				t.Fatal(err)
			}
			if n := countHidden(t, root); n != 0 {
				t.Errorf("%d stale temporary files survive a save", n)
			}
		})
	}
}

// countHidden counts the hidden entries (temporary files) under dir.
func countHidden(t *testing.T, dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}
