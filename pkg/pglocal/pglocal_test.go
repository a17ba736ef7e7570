package pglocal_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/grantline/grantline/pkg/pglocal"
)

func start(t *testing.T, opts pglocal.Options) *pglocal.Cluster {
	t.Helper()
	began := time.Now()
	c, err := pglocal.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster in %s started in %v", c.Dir(), time.Since(began).Round(time.Millisecond))
	// Stop is idempotent, so this only matters when a test fails before its own Stop.
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func TestStartQueryCreateDatabasesStop(t *testing.T) {
	c := start(t, pglocal.Options{})

	if got := queryString(t, connect(t, c.URL()), "select 1::text"); got != "1" {
		t.Fatalf("select 1 = %q", got)
	}

	url1, err := c.CreateDatabase(t.Context(), "one")
	if err != nil {
		t.Fatal(err)
	}
	url2, err := c.CreateDatabase(t.Context(), "two")
	if err != nil {
		t.Fatal(err)
	}
	if url1 == url2 {
		t.Fatalf("both databases have URL %s", url1)
	}
	db1, db2 := connect(t, url1), connect(t, url2)
	if _, err := db1.Exec(t.Context(), "create table only_in_one (id int)"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, db1, "select current_database()"); got != "one" {
		t.Errorf("first database is %q", got)
	}
	if got := queryString(t, db2, "select current_database()"); got != "two" {
		t.Errorf("second database is %q", got)
	}
	if got := queryString(t, db2, "select coalesce(to_regclass('only_in_one')::text, 'absent')"); got != "absent" {
		t.Errorf("table of the first database visible in the second: %q", got)
	}
	if _, err := c.CreateDatabase(t.Context(), "one"); err == nil {
		t.Error("creating an existing database succeeded")
	}

	pid := postmasterPID(t, c.Dir())
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary dir %s not removed: %v", c.Dir(), err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestReuseDirKeepsData(t *testing.T) {
	// Not t.TempDir(): as root the server runs as the postgres user, who cannot enter a 0700 root dir.
	base, err := os.MkdirTemp("", "pglocal-reuse-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "data")

	c := start(t, pglocal.Options{Dir: dir})
	if _, err := connect(t, c.URL()).Exec(t.Context(), "create table kept (v text); insert into kept values ('still here')"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Fatalf("Stop removed a caller's dir: %v", err)
	}

	c = start(t, pglocal.Options{Dir: dir})
	if got := queryString(t, connect(t, c.URL()), "select v from kept"); got != "still here" {
		t.Errorf("after restart kept has %q", got)
	}
}

func TestNoBinariesIsErrNoPostgres(t *testing.T) {
	check := func(t *testing.T, err error) {
		t.Helper()
		t.Log(err)
		if !errors.Is(err, pglocal.ErrNoPostgres) {
			t.Fatalf("err = %v, want ErrNoPostgres", err)
		}
		if !strings.Contains(err.Error(), "apt-get install postgresql") {
			t.Errorf("error does not say what to install: %v", err)
		}
	}
	t.Run("option", func(t *testing.T) {
		_, err := pglocal.Start(t.Context(), pglocal.Options{BinDir: t.TempDir()})
		check(t, err)
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("GRANTLINE_PG_BINDIR", filepath.Join(t.TempDir(), "missing"))
		_, err := pglocal.Start(t.Context(), pglocal.Options{})
		check(t, err)
	})
}

func TestStartFailureShowsServerLog(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	c, err := pglocal.Start(t.Context(), pglocal.Options{Port: port})
	if err == nil {
		c.Stop(context.Background())
		t.Fatal("Start on a taken port succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "already in use") {
		t.Errorf("error lacks the server log's reason: %v", err)
	}
}

func TestUnreachableDirIsExplained(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the data dir to another user")
	}
	_, err := pglocal.Start(t.Context(), pglocal.Options{Dir: filepath.Join(t.TempDir(), "data")})
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("err = %v, want an explanation that the postgres user cannot enter the dir", err)
	}
}

func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// waitGone waits until process pid has exited. A zombie counts as gone: the orphaned postmaster's
// reaper is PID 1, which in some containers never reaps.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if syscall.Kill(pid, 0) != nil || isZombie(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still running", pid)
		}
		<-tick.C
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name, which may itself contain ") ".
	s := string(b)
	i := strings.LastIndex(s, ") ")
	return i >= 0 && strings.HasPrefix(s[i+2:], "Z")
}

// TestServerStopsWhenOwnerDies kills a process owning a cluster, as a `go test -timeout` panic or a
// SIGKILL would, and expects the server and its temporary dir to go too.
func TestServerStopsWhenOwnerDies(t *testing.T) {
	if os.Getenv("PGLOCAL_TEST_OWNER") == "1" {
		c, err := pglocal.Start(t.Context(), pglocal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("READY %s %d\n", c.Dir(), postmasterPID(t, c.Dir()))
		io.Copy(io.Discard, os.Stdin) // until killed: the parent never closes it
		return
	}

	owner := exec.Command(os.Args[0], "-test.run=^TestServerStopsWhenOwnerDies$")
	owner.Env = append(os.Environ(), "PGLOCAL_TEST_OWNER=1")
	owner.Stderr = os.Stderr
	stdin, err := owner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := owner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	var pid int
	scan := bufio.NewScanner(stdout)
	for scan.Scan() {
		if _, err := fmt.Sscanf(scan.Text(), "READY %s %d", &dir, &pid); err == nil {
			break
		}
	}
	owner.Process.Kill()
	owner.Wait()
	if pid == 0 {
		t.Fatal("owner process did not start a cluster")
	}

	waitGone(t, pid)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dir %s of a dead owner's cluster not removed", dir)
		}
		<-tick.C
	}
}

func TestEnsureDatabaseIsIdempotent(t *testing.T) {
	c := start(t, pglocal.Options{})
	first, err := c.EnsureDatabase(context.Background(), "grantline")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.EnsureDatabase(context.Background(), "grantline")
	if err != nil || second != first {
		t.Fatalf("second ensure: %q %v, want %q", second, err, first)
	}
	if _, err := c.CreateDatabase(context.Background(), "grantline"); err == nil {
		t.Fatal("CreateDatabase of an existing database should fail")
	}
}
