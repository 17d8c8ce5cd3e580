package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"paydr/internal/local/daemon"
	"paydr/internal/local/moto"
	"paydr/internal/local/pg"
	"paydr/internal/tfcli"
)

// ErrMissingPrerequisite is matched (errors.Is) by every error of
// CheckPrerequisites.
var ErrMissingPrerequisite = errors.New("missing prerequisite")

// Prerequisites are the tools paydr up found.
type Prerequisites struct {
	Terraform string `json:"terraform"`
	Mirror    string `json:"provider_mirror"`
	MotoBin   string `json:"moto_server"`
	PGBinDir  string `json:"postgresql_bin_dir"`
	Go        string `json:"go,omitempty"`
	Exe       string `json:"paydr"`
}

// PrerequisiteError is one missing tool or busy port, with how to fix it.
type PrerequisiteError struct {
	What string // such as "terraform" or "port 8080"
	Err  error  // what went wrong, ending with how to fix it
}

func (e *PrerequisiteError) Error() string { return e.What + ": " + e.Err.Error() }

// Unwrap returns both the cause and ErrMissingPrerequisite.
func (e *PrerequisiteError) Unwrap() []error { return []error{e.Err, ErrMissingPrerequisite} }

// CheckPrerequisites finds everything paydr up needs and reports every
// missing piece at once, each with how to get it. needGo is whether the
// processor zip must be built; ports are the fixed ports asked for (0s are
// ignored) that must be free.
func CheckPrerequisites(exe string, needGo bool, ports map[string]int) (Prerequisites, error) {
	var p Prerequisites
	var errs []error
	add := func(what string, err error) { errs = append(errs, &PrerequisiteError{What: what, Err: err}) }

	if bin, err := tfcli.LookPath(); err != nil {
		add("terraform", err)
	} else {
		p.Terraform = bin
	}
	if dir, err := tfcli.FindMirror(); err != nil {
		add("provider mirror", err)
	} else {
		p.Mirror = dir
	}
	motoBin := os.Getenv(moto.EnvBin)
	if motoBin == "" {
		motoBin = "moto_server"
	}
	if bin, err := exec.LookPath(motoBin); err != nil {
		add("moto_server", fmt.Errorf("%s not found (%w); install it with `pip install 'moto[server]>=5.2,<5.3'` or set %s to its path", motoBin, err, moto.EnvBin))
	} else {
		p.MotoBin = bin
	}
	if dir, err := pg.FindBinDir(""); err != nil {
		add("postgresql", fmt.Errorf("%w; install PostgreSQL 15 server binaries (`apt-get install postgresql-15`) or set %s to their directory", err, pg.EnvBinDir))
	} else {
		p.PGBinDir = dir
	}
	if needGo {
		if bin, err := exec.LookPath("go"); err != nil {
			add("go", fmt.Errorf("the go command builds the processor's Lambda zip and is not on PATH (%w); install Go 1.26 or pass --processor-zip", err))
		} else {
			p.Go = bin
		}
	}
	if exe == "" {
		add("paydr", errors.New("the paydr executable that hosts the processors and the router is unknown; run paydr up from the paydr binary"))
	} else if _, err := os.Stat(exe); err != nil {
		add("paydr", fmt.Errorf("%w; rebuild paydr", err))
	} else {
		p.Exe = exe
	}
	for what, port := range ports {
		if port != 0 && !daemon.PortFree(port) {
			add(fmt.Sprintf("%s port %d", what, port), fmt.Errorf("127.0.0.1:%d is in use; stop what listens there (`ss -ltnp 'sport = :%d'`) or choose another port (0 picks a free one)", port, port))
		}
	}
	if len(errs) > 0 {
		return p, fmt.Errorf("up: check prerequisites: %w", joinLines(errs))
	}
	return p, nil
}

// joinLines joins errs as one error printed one per line, each indented.
func joinLines(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return multiError(errs)
}

type multiError []error

func (m multiError) Error() string {
	lines := make([]string, len(m))
	for i, e := range m {
		lines[i] = "\n  - " + e.Error()
	}
	return fmt.Sprintf("%d problems:%s", len(m), strings.Join(lines, ""))
}

func (m multiError) Unwrap() []error { return m }

// checkPrerequisites is Up's first step: the tools it needs, and the
// router port asked for free unless the running router holds it.
func (u *upRun) checkPrerequisites(context.Context) (string, error) {
	p, err := CheckPrerequisites(u.o.Exe, u.o.ProcessorZip == "", u.ports)
	if err != nil {
		return "", err
	}
	// Checked now, not after the apply: the databases start last.
	if err := pg.CheckReachable(u.o.StateDir); err != nil {
		return "", fmt.Errorf("up: check prerequisites: %w", &PrerequisiteError{What: "state directory " + u.o.StateDir, Err: err})
	}
	return fmt.Sprintf("terraform %s, provider mirror %s, moto_server %s, PostgreSQL %s", p.Terraform, p.Mirror, p.MotoBin, p.PGBinDir), nil
}
