// Package pglocal runs a private, throwaway PostgreSQL cluster from the locally installed server binaries.
//
// It backs both the test helpers in pgtest and the `grantline dev` command, so it must not depend on
// package testing. The cluster listens on 127.0.0.1 only, trusts every local connection and runs with
// durability switched off: it is for tests and development, never for data that matters.
package pglocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoPostgres is wrapped by Start when no usable PostgreSQL server binaries (initdb, pg_ctl) are found.
var ErrNoPostgres = errors.New("no PostgreSQL server binaries (initdb, pg_ctl) found: " +
	"install them (Debian/Ubuntu: apt-get install postgresql) or set GRANTLINE_PG_BINDIR to the directory holding them")

// Options configures Start. The zero value is a fresh cluster in a temporary directory on a free port.
type Options struct {
	// Dir is the cluster's data directory; the server log (postgres.log) and Unix socket live in it too.
	// If it already holds a cluster (PG_VERSION exists) that cluster is reused, so data survives
	// Stop and Start; otherwise it is created if missing and initialised. If empty, a fresh directory
	// under os.TempDir() is used and Stop removes it.
	Dir string
	// Port is the TCP port on 127.0.0.1 to listen on; 0 picks a free one.
	Port int
	// BinDir is the directory holding initdb and pg_ctl. If empty it is found from GRANTLINE_PG_BINDIR,
	// then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
	BinDir string
}

// Cluster is a running PostgreSQL server started by Start. Its methods are safe for concurrent use.
// pg_ctl detaches the server into its own session, so it ignores the starting process's Ctrl-C; if
// that process exits without calling Stop, a watchdog process stops the server (and removes a
// temporary Dir) instead, so no server outlives its owner.
type Cluster struct {
	dir     string
	port    int
	ownsDir bool // Dir was a temporary directory created by Start, so Stop removes it
	run     runner
	guard   *watchdog

	mu      sync.Mutex
	stopped bool
}

// Start initialises (or reuses) a cluster as described by opts, starts it and returns once a client
// connection succeeds. Errors wrap ErrNoPostgres when no binaries are found; a failed server start
// carries the tail of the server log. On error nothing is left running and a temporary Dir is removed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := findBinDir(ctx, opts.BinDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	run, err := newRunner(bin)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	dir, ownsDir, err := run.prepareDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{dir: dir, ownsDir: ownsDir, run: run}
	if err := c.start(ctx, opts.Port); err != nil {
		if ownsDir {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("start postgres in %s: %w", dir, err)
	}
	return c, nil
}

// URL returns the connection URL of the cluster's "postgres" database as superuser "postgres".
func (c *Cluster) URL() string { return c.databaseURL("postgres") }

// Dir returns the cluster's data directory.
func (c *Cluster) Dir() string { return c.dir }

// Stop shuts the server down (pg_ctl stop -m fast), waits for it to exit and, if Start created the
// directory, removes it. Stopping a stopped cluster does nothing. If the server does not stop, the
// error carries pg_ctl's output and the directory is kept.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if err := c.run.stop(ctx, c.dir, "fast"); err != nil {
		// Fast shutdown waits for running queries to be cancelled; immediate does not wait at all.
		if err2 := c.run.stop(ctx, c.dir, "immediate"); err2 != nil {
			return fmt.Errorf("stop postgres in %s: %w", c.dir, errors.Join(err, err2))
		}
	}
	c.stopped = true
	c.guard.dismiss()
	if c.ownsDir {
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("stop postgres: remove %s: %w", c.dir, err)
		}
	}
	return nil
}

func (c *Cluster) start(ctx context.Context, port int) error {
	_, err := os.Stat(filepath.Join(c.dir, "PG_VERSION"))
	initialised := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if initialised && c.run.running(ctx, c.dir) {
		// Starting again would fail anyway; cleaning up after that failure must not stop the other server.
		return fmt.Errorf("a server is already running on this directory; stop it first (pg_ctl stop -D %s)", c.dir)
	}
	guard, err := c.run.startWatchdog(c.dir, c.ownsDir)
	if err != nil {
		return err
	}
	if !initialised {
		err = c.run.initdb(ctx, c.dir)
	}
	if err == nil {
		err = c.serve(ctx, port)
	}
	if err != nil {
		// A timed-out or half-failed start may leave a server behind; nothing of ours may outlive Start.
		c.run.stopQuietly(c.dir)
		guard.dismiss()
		return err
	}
	c.guard = guard
	return nil
}

// serve starts the server on port, or a free port if 0, and waits until it accepts connections.
func (c *Cluster) serve(ctx context.Context, port int) error {
	var logStart int64
	for attempt := 1; ; attempt++ {
		logStart = c.run.logSize(c.dir)
		c.port = port
		if port == 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			c.port = p
		}
		err := c.run.start(ctx, c.dir, c.port)
		if err == nil {
			break
		}
		// A port picked free can be taken before the server binds it; another one will do.
		if port != 0 || attempt == 3 || !strings.Contains(err.Error(), "already in use") {
			return err
		}
	}
	if err := waitReady(ctx, c.URL()); err != nil {
		return fmt.Errorf("%w\nserver log:\n%s", err, c.run.logTail(c.dir, logStart))
	}
	return nil
}

func (c *Cluster) databaseURL(name string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + name,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// freePort asks the kernel for an unused loopback port. The port is released before the server binds
// it, hence the retry in start.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stopTimeout bounds the clean-up shutdowns that run after the caller's context may be gone.
const stopTimeout = 60 * time.Second
