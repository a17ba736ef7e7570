package pglocal

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// findBinDir returns the directory holding initdb and pg_ctl. A directory named explicitly (by
// Options.BinDir or GRANTLINE_PG_BINDIR) must be usable: silently falling back to another
// installation would hide the misconfiguration.
func findBinDir(ctx context.Context, explicit string) (string, error) {
	if explicit != "" {
		return checkBinDir(explicit, "Options.BinDir")
	}
	if env := os.Getenv("GRANTLINE_PG_BINDIR"); env != "" {
		return checkBinDir(env, "GRANTLINE_PG_BINDIR")
	}
	// pg_config can belong to libpq-dev without a server installed, so its answer is only a candidate.
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServerBinaries(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return slices.Compare(versionOf(b), versionOf(a)) })
	for _, dir := range dirs {
		if hasServerBinaries(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w (looked at GRANTLINE_PG_BINDIR, pg_config --bindir and /usr/lib/postgresql/*/bin)", ErrNoPostgres)
}

func checkBinDir(dir, source string) (string, error) {
	if !hasServerBinaries(dir) {
		return "", fmt.Errorf("%w (%s is %q, which has no executable initdb and pg_ctl)", ErrNoPostgres, source, dir)
	}
	return dir, nil
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionOf parses the version directory in /usr/lib/postgresql/<version>/bin, e.g. "15" or "9.6".
func versionOf(binDir string) []int {
	var v []int
	for _, part := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}
