package policy

import (
	"cmp"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Test runs the Rego tests of the bundle in bundleDir (rules named test_* in any of its .rego files)
// with OPA's test runner, and writes one line per test to out: PASS, FAIL or ERROR, the test's package
// and name, and how long it took (with the error for ERROR), then a summary line. It returns an error if
// the bundle would not load in the policy service (see Load), does not compile with its tests, has no
// tests, or any test fails or errors.
func Test(ctx context.Context, bundleDir string, out io.Writer) error {
	if _, err := Load(ctx, bundleDir); err != nil {
		return err
	}
	files, err := readBundle(bundleDir)
	if err != nil {
		return err
	}
	modules := make(map[string]*ast.Module, len(files))
	for _, f := range files {
		m, err := ast.ParseModuleWithOpts(f.path, string(f.content), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			return fmt.Errorf("policy bundle %s: %w", bundleDir, err)
		}
		modules[f.path] = m
	}
	ch, err := tester.NewRunner().SetModules(modules).SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).RunTests(ctx, nil)
	if err != nil {
		return fmt.Errorf("policy bundle %s: %w", bundleDir, err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	// Results arrive in completion order; report them in file order so runs compare line by line.
	slices.SortFunc(results, func(a, b *tester.Result) int {
		return cmp.Or(strings.Compare(a.Location.File, b.Location.File), cmp.Compare(a.Location.Row, b.Location.Row))
	})
	var passed, failed int
	for _, r := range results {
		name := r.Package + "." + r.Name
		switch {
		case r.Error != nil:
			failed++
			fmt.Fprintf(out, "ERROR %s (%s): %v\n", name, r.Duration, r.Error)
		case r.Skip:
			fmt.Fprintf(out, "SKIP  %s\n", name)
		case r.Fail:
			failed++
			fmt.Fprintf(out, "FAIL  %s (%s)\n", name, r.Duration)
		default:
			passed++
			fmt.Fprintf(out, "PASS  %s (%s)\n", name, r.Duration)
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("policy tests: %w", ctx.Err())
	case passed+failed == 0:
		return fmt.Errorf("policy bundle %s has no tests (rules named test_*)", bundleDir)
	case failed > 0:
		return fmt.Errorf("policy tests: %d of %d failed", failed, passed+failed)
	}
	return nil
}

// Eval loads the bundle in bundleDir and evaluates it on input, a JSON input document (see Input and the
// comment at the top of examples/policies/grantline.rego), and returns the checked decision as JSON. The
// input is evaluated as given, canonicalized but not otherwise rewritten; an evaluation error, a timeout
// or an answer of the wrong shape is an error (see Engine.Evaluate).
func Eval(ctx context.Context, bundleDir string, input []byte) ([]byte, error) {
	e, err := Load(ctx, bundleDir)
	if err != nil {
		return nil, err
	}
	doc := jsontext.Value(slices.Clone(input))
	if err := doc.Canonicalize(); err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	ev, err := e.EvaluateRecorded(ctx, doc)
	if err != nil {
		return nil, err
	}
	d := ev.Decision
	return json.Marshal(d)
}
