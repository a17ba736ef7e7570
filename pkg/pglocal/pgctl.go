package pglocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const logName = "postgres.log"

// serverSettings switch durability off: the cluster is thrown away (tests) or holds only
// reproducible development data, and skipping fsync makes start-up, CREATE DATABASE and every
// commit much faster. A crash of the machine can corrupt such a cluster; that is accepted.
// max_connections is raised because parallel tests each hold their own pools.
var serverSettings = []string{"fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200"}

func (r runner) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, name), args...)
	// The caller's working directory may be unreadable to the postgres user.
	cmd.Dir = "/"
	cmd.Env = serverEnv()
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	// Should the server ever inherit our output pipe, do not wait for it to exit.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// serverEnv is our environment without PG* variables: PGDATA, PGPORT, PGOPTIONS and friends would
// otherwise steer initdb, pg_ctl and the server away from what was asked for.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func (r runner) initdb(ctx context.Context, dir string) error {
	// --no-sync, trust and the C locale: fast, and the same on every machine.
	out, err := r.command(ctx, "initdb", "-D", dir, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, tail(out))
	}
	return nil
}

func (r runner) start(ctx context.Context, dir string, port int) error {
	opts := []string{"-h 127.0.0.1", "-p " + strconv.Itoa(port), "-k " + shellQuote(dir)}
	for _, s := range serverSettings {
		opts = append(opts, "-c "+s)
	}
	from := r.logSize(dir)
	// pg_ctl hands -o to a shell, hence the quoting of the socket directory.
	out, err := r.command(ctx, "pg_ctl", "start", "-D", dir, "-w", "-t", "60",
		"-l", filepath.Join(dir, logName), "-o", strings.Join(opts, " ")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\nserver log:\n%s", err, tail(out), r.logTail(dir, from))
	}
	return nil
}

func (r runner) stop(ctx context.Context, dir, mode string) error {
	pidFile, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // already down; pg_ctl would call that an error
	}
	out, err := r.command(ctx, "pg_ctl", "stop", "-D", dir, "-m", mode, "-w", "-t", "60").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %w\n%s", mode, err, tail(out))
	}
	// pg_ctl returns once postmaster.pid is gone, which the postmaster removes just before it exits:
	// wait for the exit itself, so that "stopped" means no process is left.
	if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0])); err == nil {
		return awaitExit(ctx, pid)
	}
	return nil
}

// awaitExit polls until process pid has exited (gone, or a zombie awaiting its parent) or ctx ends.
func awaitExit(ctx context.Context, pid int) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres (pid %d) still runs after pg_ctl stop: %w", pid, ctx.Err())
		case <-tick.C:
		}
	}
}

// stopQuietly is best-effort clean-up after a failed start, when the caller's context may be done.
func (r runner) stopQuietly(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	_ = r.stop(ctx, dir, "immediate")
}

// running reports whether a live server owns dir (pg_ctl status exits 0 only then).
func (r runner) running(ctx context.Context, dir string) bool {
	return r.command(ctx, "pg_ctl", "status", "-D", dir).Run() == nil
}

func (r runner) logSize(dir string) int64 {
	fi, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns the end of what the server logged since offset from, which is where the reason for a
// failed start is.
func (r runner) logTail(dir string, from int64) string {
	f, err := os.Open(filepath.Join(dir, logName))
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return "(server log: " + err.Error() + ")"
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "(server log: " + err.Error() + ")"
	}
	return tail(b)
}

// tail keeps the last 30 lines of out.
func tail(out []byte) string {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
