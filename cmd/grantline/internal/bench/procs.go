package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the bench started: nats-server or a service.
type child struct {
	name    string
	cmd     *exec.Cmd
	env     []string
	logPath string
	done    chan struct{}
	waitErr error
	// httpAddr serves a service's API, /livez, /readyz and /metrics; pprofAddr its profiling endpoints
	// when it is profiled.
	httpAddr, pprofAddr string
}

// stopGrace is how long a child has to stop after SIGTERM; a service drains its consumers within its
// own 15 s shutdown bound.
const stopGrace = 20 * time.Second

// startChild starts path with args and env, its output in logDir/<name>.log. The child gets its own
// process group, so the terminal's Ctrl-C reaches only the bench, which stops the children in order;
// and the kernel kills it should the bench die without stopping it.
func startChild(name, path string, args, env []string, logDir string) (*child, error) {
	logPath := filepath.Join(logDir, name+".log")
	// Appending: a service restarted from another binary (--compare) keeps one log.
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	c := &child{name: name, cmd: cmd, env: env, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the child to shut down and kills it if it has not within stopGrace. It returns once the
// child is gone.
func (c *child) stop() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopGrace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// logTail is the end of the child's log, for an error that says why it did not come up.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// waitReady polls url until it answers 200, failing early if the child exits and after timeout.
func (c *child) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		if c.exited() {
			return fmt.Errorf("%s exited before it was ready (%v); its log ends:\n%s", c.name, c.waitErr, c.logTail())
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s within %s (last answer: %s); its log ends:\n%s", c.name, url, timeout, last, c.logTail())
		case <-tick.C:
		}
	}
}

// freePort asks the kernel for a free loopback port. Another process could take it before the child
// binds it; the child then fails to start and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on every Linux the bench
// targets).
const clockTick = 10 * time.Millisecond

// procStat is the part of /proc/<pid>/stat the bench reads.
type procStat struct {
	ppid int
	// cpu is user + system time; children adds what the process's reaped children used.
	cpu, children time.Duration
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses; the fields after its last ')' do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	n := make([]int64, 0, 5)
	for _, k := range []int{1, 11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("/proc/%d/stat field %d: %w", pid, k+3, err)
		}
		n = append(n, v)
	}
	return procStat{ppid: int(n[0]), cpu: time.Duration(n[1]+n[2]) * clockTick, children: time.Duration(n[3]+n[4]) * clockTick}, nil
}

// treeCPU is the CPU time of pid and of every process descending from it, live or exited (an exited
// child's time is in its parent's children's times once reaped): PostgreSQL does its work in a
// backend process per connection and in background workers, all below the postmaster.
func treeCPU(pid int) (time.Duration, error) {
	root, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	stats := map[int]procStat{pid: root}
	children := map[int][]int{}
	for _, e := range entries {
		other, err := strconv.Atoi(e.Name())
		if err != nil || other == pid {
			continue
		}
		if s, err := readStat(other); err == nil {
			stats[other] = s
			children[s.ppid] = append(children[s.ppid], other)
		}
	}
	var total time.Duration
	for stack := []int{pid}; len(stack) > 0; {
		p := stack[len(stack)-1]
		stack = append(stack[:len(stack)-1], children[p]...)
		total += stats[p].cpu + stats[p].children
	}
	return total, nil
}

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/" + strconv.Itoa(pid) + "/status")
}

// running reports whether a process with pid exists (and is not a zombie waiting to be reaped).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// cpu is the CPU time used so far by each process of the system and by the bench itself.
func (r *run) cpu() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, c := range r.s.children() {
		if st, err := readStat(c.pid()); err == nil {
			out[c.name] = st.cpu
		}
	}
	if pid := r.s.postmaster(); pid > 0 {
		if d, err := treeCPU(pid); err == nil {
			out["postgres"] = d
		}
	}
	if st, err := readStat(os.Getpid()); err == nil {
		out[benchProcess] = st.cpu
	}
	return out
}

func since(now, before map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range now {
		out[k] = v - before[k]
	}
	return out
}

// processes is every process of the system with its peak memory so far.
func (r *run) processes() []Process {
	var out []Process
	add := func(name string, pid int) {
		if rss, err := peakRSS(pid); err == nil {
			out = append(out, Process{Name: name, PID: pid, PeakRSS: rss})
		}
	}
	for _, c := range r.s.children() {
		add(c.name, c.pid())
	}
	if pid := r.s.postmaster(); pid > 0 {
		add("postgres", pid)
	}
	add(benchProcess, os.Getpid())
	return out
}

// postmaster is the PID of the private PostgreSQL's main process, 0 if unknown.
func (s *system) postmaster() int {
	if s.pg == nil {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(s.pg.Dir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}
