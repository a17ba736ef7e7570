package cli

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const repoRoot = "../../../.."

// TestRunbookNamesWhatExists: every grantline command and flag docs/operations.md tells an operator to
// run exists in the command tree, every grantline-<service> binary it names exists, and every
// GRANTLINE_* name (a variable, a stream, a bucket) appears in the code. A runbook that names something gone is
// worse than none in an incident.
func TestRunbookNamesWhatExists(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	root := rootCommand(io.Discard, io.Discard)
	commands := 0
	for _, line := range commandLines(string(doc)) {
		args := strings.Fields(line)
		switch {
		case args[0] == "grantline" && len(args) > 1: // alone, it names the CLI in prose
			commands++
			cmd, rest, err := root.Find(args[1:])
			if err != nil || cmd == root {
				t.Errorf("the runbook runs %q: no such command (%v)", line, err)
				continue
			}
			for _, arg := range rest {
				name, isFlag := strings.CutPrefix(arg, "--")
				name, _, _ = strings.Cut(name, "=")
				if isFlag && cmd.Flags().Lookup(name) == nil && cmd.InheritedFlags().Lookup(name) == nil {
					t.Errorf("the runbook runs %q: %s has no flag --%s", line, cmd.CommandPath(), name)
				}
			}
		case strings.HasPrefix(args[0], "grantline-"):
			if _, err := os.Stat(filepath.Join(repoRoot, "services", strings.TrimPrefix(args[0], "grantline-"), "cmd", args[0])); err != nil {
				t.Errorf("the runbook runs %s, which is not a service binary", args[0])
			}
		}
	}
	if commands < 10 {
		t.Fatalf("found only %d grantline commands in the runbook: the scan is broken", commands)
	}

	read := variablesInCode(t)
	for _, v := range regexp.MustCompile(`GRANTLINE_[A-Z0-9_]+`).FindAllString(string(doc), -1) {
		if !read[v] {
			t.Errorf("the runbook names %s, which no code defines", v)
		}
	}
}

// commandLines returns each command of the markdown doc: the lines of its code blocks and its inline
// code spans, split at shell operators, without comments or line continuations.
func commandLines(doc string) []string {
	var spans []string
	inBlock := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			line, _, _ = strings.Cut(line, " #")
			spans = append(spans, strings.TrimSuffix(strings.TrimSpace(line), "\\"))
			continue
		}
		parts := strings.Split(line, "`")
		for i := 1; i < len(parts); i += 2 {
			spans = append(spans, parts[i])
		}
	}
	var out []string
	for _, span := range spans {
		for _, cmd := range regexp.MustCompile(`&&|\|\||;|\|`).Split(span, -1) {
			if cmd = strings.TrimSpace(cmd); cmd != "" {
				out = append(out, cmd)
			}
		}
	}
	return out
}

// variablesInCode collects every GRANTLINE_* name that appears in the repository's Go code.
func variablesInCode(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`GRANTLINE_[A-Z0-9_]+`)
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range re.FindAllString(string(b), -1) {
			names[n] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
