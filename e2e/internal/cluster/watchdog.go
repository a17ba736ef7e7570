package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// runLabel marks every container of one harness run with the run's ID, so all of them can be found
// and removed together.
const runLabel = "dev.grantline.e2e.run"

// watchdogScript waits for end-of-file on stdin, then force-removes the run's containers (and their
// anonymous volumes) and deletes the work directory. Only the kernel closing our end of the pipe
// produces that end-of-file, so it fires however the test process ends: Close, Ctrl-C, a `go test
// -timeout` panic, SIGKILL. Without it a dead run would leave containers holding host ports, since the
// testcontainers reaper (Ryuk) cannot run here: its image cannot be pulled.
const watchdogScript = `read _ || :
ids=$(docker ps -aq --filter "label=$0")
[ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1
rm -rf "$1"`

// watchdog removes what a run left behind once the run's process is gone.
type watchdog struct {
	cmd  *exec.Cmd
	pipe *os.File // write end, never written to; held open only to say that the run is alive
}

// startWatchdog starts the watchdog for the containers labelled runLabel=runID and the directory work.
// It needs the docker command line, which comes with the engine.
func startWatchdog(runID, work string) (*watchdog, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("the docker command is needed to clean up after an interrupted run: %w", err)
	}
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	defer rd.Close()
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, runLabel+"="+runID, work)
	cmd.Dir = "/"
	cmd.Stdin = rd
	// Its own session, so that the Ctrl-C that stops the tests does not stop it before it has acted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, pipe: wr}, nil
}

// sweep lets the watchdog act now and waits until it has: whatever Close could not remove goes too.
func (w *watchdog) sweep() error {
	return errors.Join(w.pipe.Close(), w.cmd.Wait())
}
