package local

import (
	"path/filepath"
)

// DRDir is where DR operations keep their journal, lock and preserved data
// in the state directory stateDir.
func DRDir(stateDir string) string { return filepath.Join(stateDir, "dr") }

// DRJournalDir is the DR journal of the environment in stateDir.
func DRJournalDir(stateDir string) string { return filepath.Join(DRDir(stateDir), "journal") }

// layout names the files and directories inside a state directory.
type layout struct{ root string }

func (l layout) manifest() string  { return ManifestPath(l.root) }
func (l layout) motoDir() string   { return filepath.Join(l.root, "moto") }
func (l layout) pgDir() string     { return filepath.Join(l.root, "pg") }
func (l layout) logDir() string    { return filepath.Join(l.root, "logs") }
func (l layout) runDir() string    { return filepath.Join(l.root, "run") }
func (l layout) stackRoot() string { return filepath.Join(l.root, "stack") }

// stackDir is the Terraform working directory of the stack named name.
func (l layout) stackDir(name string) string {
	return filepath.Join(l.stackRoot(), "stacks", name)
}

// dataDir is the PostgreSQL data directory of a slot.
func (l layout) dataDir(s Slot) string { return filepath.Join(l.pgDir(), string(s)) }

func (l layout) terraformLog() string { return filepath.Join(l.logDir(), "terraform.log") }

func (l layout) processorLog(s Slot) string {
	return filepath.Join(l.logDir(), "processor-"+string(s)+".log")
}

func (l layout) processorPID(s Slot) string {
	return filepath.Join(l.runDir(), "processor-"+string(s)+".pid")
}

func (l layout) routerLog() string { return filepath.Join(l.logDir(), "router.log") }
func (l layout) routerPID() string { return filepath.Join(l.runDir(), "router.pid") }

func (l layout) faultProxyLog() string { return filepath.Join(l.logDir(), "fault-proxy.log") }
func (l layout) faultProxyPID() string { return filepath.Join(l.runDir(), "fault-proxy.pid") }

// applied records what the last successful apply applied, and to which
// emulator process.
func (l layout) applied(stackDir string) string { return filepath.Join(stackDir, "paydr-applied.json") }
