package pglocal

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// watchdogScript waits for end-of-file on stdin, then stops the server and optionally removes its
// directory. Only the kernel closing our end of the pipe produces that end-of-file, so it fires
// however this process ends: a panic, a `go test -timeout`, SIGKILL.
const watchdogScript = `read _ || :; "$0" stop -D "$1" -m fast -w -t 60 >/dev/null 2>&1; [ "$2" = remove ] && rm -rf "$1"`

// watchdog stops a cluster whose owning process died without calling Stop. pg_ctl puts the server in
// its own session, so nothing else would: an orphaned server and its data dir would stay forever.
type watchdog struct {
	cmd  *exec.Cmd
	pipe *os.File // write end, never written to; held open only to signal that we are alive
}

func (r runner) startWatchdog(dir string, removeDir bool) (*watchdog, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	defer rd.Close()
	remove := "keep"
	if removeDir {
		remove = "remove"
	}
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, filepath.Join(r.bin, "pg_ctl"), dir, remove)
	cmd.Dir = "/"
	cmd.Env = serverEnv()
	cmd.Stdin = rd
	// Its own session, so that a Ctrl-C meant for us does not kill it before it has done its job.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: r.cred}
	if err := cmd.Start(); err != nil {
		wr.Close()
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return &watchdog{cmd: cmd, pipe: wr}, nil
}

// dismiss ends the watchdog without letting it act, once the owner stops the cluster itself.
func (w *watchdog) dismiss() {
	w.cmd.Process.Kill()
	w.cmd.Wait()
	w.pipe.Close()
}
