package pglocal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runner runs the PostgreSQL binaries from bin as the OS user the server must run as.
type runner struct {
	bin string
	// cred is nil when running as ourselves. PostgreSQL refuses to run as root, so as root the
	// binaries run as the "postgres" OS user, which the Debian packages create.
	cred *syscall.Credential
}

func newRunner(bin string) (runner, error) {
	r := runner{bin: bin}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return r, fmt.Errorf("running as root, but PostgreSQL refuses to run as root and there is no "+
			"\"postgres\" OS user to run it as (apt-get install postgresql creates one): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return r, fmt.Errorf("postgres OS user: %w", err)
	}
	// Groups stays empty so root's supplementary groups are dropped rather than inherited.
	r.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	return r, nil
}

// prepareDir returns the absolute data directory, creating it (or a temporary one when dir is empty,
// reported by owned) and handing it to the server's user.
func (r runner) prepareDir(dir string) (abs string, owned bool, err error) {
	if dir == "" {
		if abs, err = os.MkdirTemp(os.TempDir(), "grantline-pg-"); err != nil {
			return "", false, fmt.Errorf("create data dir: %w", err)
		}
		owned = true
	} else {
		if abs, err = filepath.Abs(dir); err == nil {
			// 0755 so that created parents stay traversable; initdb tightens the data dir itself to 0700.
			err = os.MkdirAll(abs, 0o755)
		}
		if err != nil {
			return "", false, fmt.Errorf("create data dir: %w", err)
		}
	}
	if err := r.handOver(abs); err != nil {
		if owned {
			os.RemoveAll(abs)
		}
		return "", false, err
	}
	return abs, owned, nil
}

// handOver makes an uninitialised data dir owned by the server's user and checks that user can reach it.
// An initialised one is left alone: it belongs to whoever initialised it.
func (r runner) handOver(dir string) error {
	if r.cred == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		if err := os.Chown(dir, int(r.cred.Uid), int(r.cred.Gid)); err != nil {
			return fmt.Errorf("hand data dir to the postgres user: %w", err)
		}
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if err := r.checkTraversable(p); err != nil {
			return fmt.Errorf("data dir %s: %w", dir, err)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// checkTraversable reports, up front and in plain words, what would otherwise surface as an obscure
// "permission denied" from initdb: typically a root-owned 0700 directory such as t.TempDir() on the path.
func (r runner) checkTraversable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := fi.Mode().Perm()
	var can bool
	switch {
	case st.Uid == r.cred.Uid:
		can = mode&0o100 != 0
	case st.Gid == r.cred.Gid:
		can = mode&0o010 != 0
	default:
		can = mode&0o001 != 0
	}
	if !can {
		return fmt.Errorf("the postgres OS user (uid %d), which runs the server because PostgreSQL refuses root, "+
			"cannot enter %s (mode %#o, owner uid %d); use a directory whose parents are world-traversable, e.g. under %s",
			r.cred.Uid, dir, mode, st.Uid, os.TempDir())
	}
	return nil
}
