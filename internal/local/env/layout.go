package env

import (
	"path/filepath"
)

// Layout names the files and directories inside a state directory: what
// paydr up writes there, and where DR operations keep their journal, lock
// and preserved data.
type Layout struct {
	// Root is the state directory.
	Root string
}

// Manifest is env.json.
func (l Layout) Manifest() string { return Path(l.Root) }

// MotoDir holds the emulator's pid file and record (moto.Open).
func (l Layout) MotoDir() string { return filepath.Join(l.Root, "moto") }

// PGDir holds the PostgreSQL data directories, one per slot.
func (l Layout) PGDir() string { return filepath.Join(l.Root, "pg") }

// LogDir holds the logs; paydr down keeps it.
func (l Layout) LogDir() string { return filepath.Join(l.Root, "logs") }

// RunDir holds the pid files of the processes paydr up starts detached.
func (l Layout) RunDir() string { return filepath.Join(l.Root, "run") }

// StackRoot is the synthesis output root (the cdktf.out of paydr synth).
func (l Layout) StackRoot() string { return filepath.Join(l.Root, "stack") }

// StackDir is the Terraform working directory of the stack named name.
func (l Layout) StackDir(name string) string {
	return filepath.Join(l.StackRoot(), "stacks", name)
}

// TLSDir holds the local CA and the databases' server certificate
// (package certs); the keys are 0600.
func (l Layout) TLSDir() string { return filepath.Join(l.Root, "tls") }

// DBAppPasswordFile holds the password of the processors' database role
// (0600, in a 0700 directory); paydr up makes it and never prints it.
func (l Layout) DBAppPasswordFile() string {
	return filepath.Join(l.Root, "secrets", "db-app-password")
}

// DataDir is the PostgreSQL data directory of a slot.
func (l Layout) DataDir(s Slot) string { return filepath.Join(l.PGDir(), string(s)) }

// TerraformLog is the log of terraform init and apply.
func (l Layout) TerraformLog() string { return filepath.Join(l.LogDir(), "terraform.log") }

// ProcessorLog is the log of a slot's processor.
func (l Layout) ProcessorLog(s Slot) string {
	return filepath.Join(l.LogDir(), "processor-"+string(s)+".log")
}

// ProcessorPID is the pid file of a slot's processor.
func (l Layout) ProcessorPID(s Slot) string {
	return filepath.Join(l.RunDir(), "processor-"+string(s)+".pid")
}

// RPOGuardLog is the log of a slot's RPO guard.
func (l Layout) RPOGuardLog(s Slot) string {
	return filepath.Join(l.LogDir(), "rpo-guard-"+string(s)+".log")
}

// RPOGuardPID is the pid file of a slot's RPO guard.
func (l Layout) RPOGuardPID(s Slot) string {
	return filepath.Join(l.RunDir(), "rpo-guard-"+string(s)+".pid")
}

// RouterLog is the failover router's log.
func (l Layout) RouterLog() string { return filepath.Join(l.LogDir(), "router.log") }

// RouterPID is the failover router's pid file.
func (l Layout) RouterPID() string { return filepath.Join(l.RunDir(), "router.pid") }

// FaultProxyLog is the fault proxy's log.
func (l Layout) FaultProxyLog() string { return filepath.Join(l.LogDir(), "fault-proxy.log") }

// FaultProxyPID is the fault proxy's pid file.
func (l Layout) FaultProxyPID() string { return filepath.Join(l.RunDir(), "fault-proxy.pid") }

// Applied records what the last successful apply in stackDir applied, and
// to which emulator process.
func (l Layout) Applied(stackDir string) string {
	return filepath.Join(stackDir, "paydr-applied.json")
}

// DRDir is where DR operations keep their journal, lock and preserved data.
func (l Layout) DRDir() string { return filepath.Join(l.Root, "dr") }

// DRJournalDir is the DR journal.
func (l Layout) DRJournalDir() string { return filepath.Join(l.DRDir(), "journal") }

// DRLock is the file DR operations lock (flock(2)).
func (l Layout) DRLock() string { return filepath.Join(l.DRDir(), "lock") }

// PreservedDir holds the data directories DR operations and paydr up's
// remedies keep aside: an old writer's final state, a standby moved away.
func (l Layout) PreservedDir() string { return filepath.Join(l.DRDir(), "preserved") }
