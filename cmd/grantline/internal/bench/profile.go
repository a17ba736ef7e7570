package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Profile is the CPU profile of one process during the maximum-rate phase.
type Profile struct {
	Process string
	// Files are consecutive profiles covering the phase; go tool pprof merges them.
	Files []string
	// Top is `go tool pprof -top -cum` over the files; empty when the go command is not installed.
	Top string
	Err string
}

// profileWindow is the length of each profile taken while a phase runs. The phase's length is not
// known in advance, so the bench takes back-to-back short profiles until it ends; idle time adds no
// samples, so the last one running past the phase distorts nothing.
const profileWindow = 3 * time.Second

// profiler takes back-to-back CPU profiles of the children that serve profiling endpoints until stopped.
type profiler struct {
	dir      string
	stop     context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	profiles map[string]*Profile
}

func startProfiler(ctx context.Context, dir string, children []*child) (*profiler, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	p := &profiler{dir: dir, stop: stop, profiles: map[string]*Profile{}}
	for _, c := range children {
		if c.pprofAddr == "" {
			continue
		}
		prof := &Profile{Process: c.name}
		p.profiles[c.name] = prof
		p.wg.Go(func() {
			client := &http.Client{Timeout: profileWindow + 30*time.Second}
			for k := 0; ctx.Err() == nil; k++ {
				path := filepath.Join(dir, fmt.Sprintf("%s-%02d.pb.gz", c.name, k))
				// A profile in progress finishes its window: cancelling it would lose its samples.
				err := fetchProfile(context.WithoutCancel(ctx), client, c.pprofAddr, path)
				p.mu.Lock()
				if err != nil {
					prof.Err = err.Error()
				} else {
					prof.Files = append(prof.Files, path)
				}
				p.mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	return p, nil
}

func fetchProfile(ctx context.Context, client *http.Client, addr, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(profileWindow.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("profile from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("profile from %s: %s: %s", addr, resp.Status, msg)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stopAndWait stops profiling and waits for the profiles in progress.
func (p *profiler) stopAndWait() {
	p.stop()
	p.wg.Wait()
}

// summarise lists each process's profiles with `go tool pprof -top -cum`.
func (p *profiler) summarise(ctx context.Context) []Profile {
	var out []Profile
	for _, name := range append(Services, NATSServer) {
		prof, ok := p.profiles[name]
		if !ok {
			continue
		}
		if len(prof.Files) > 0 {
			top, err := pprofTop(ctx, prof.Files)
			prof.Top = top
			if err != nil {
				prof.Err = strings.TrimSpace(prof.Err + "\n" + err.Error())
			}
		}
		out = append(out, *prof)
	}
	return out
}

// pprofTop merges the profiles and lists the functions that used the most CPU with what they call
// (cumulative): the service's own call path shows where its time goes, which a flat list, full of the
// runtime's and the crypto's leaves, does not.
func pprofTop(ctx context.Context, files []string) (string, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no go command to summarise the profiles; `go tool pprof -top -cum` reads them")
	}
	out, err := exec.CommandContext(ctx, goCmd, append([]string{"tool", "pprof", "-top", "-cum", "-nodecount=30"}, files...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, out)
	}
	return string(out), nil
}
