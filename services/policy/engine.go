package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/grantline/grantline/pkg/events"
)

// Query is what the engine evaluates: the decision rule of package grantline.
const Query = "data.grantline.decision"

// DefaultTimeout bounds one evaluation when no WithTimeout option is given.
const DefaultTimeout = 2 * time.Second

// Engine evaluates a policy bundle, compiled once. It is safe for concurrent use.
type Engine struct {
	query    rego.PreparedEvalQuery
	revision string
	timeout  time.Duration
}

// Option configures Load.
type Option func(*Engine)

// WithTimeout bounds each evaluation to d; an evaluation still running then is an error.
func WithTimeout(d time.Duration) Option { return func(e *Engine) { e.timeout = d } }

// Evaluation is a checked decision together with what it was decided from.
type Evaluation struct {
	Decision Decision
	// Revision names the bundle that decided (see Revision).
	Revision string
	// InputDigest is the digest of the canonical input (see Input.Canonical).
	InputDigest string
	// Input is the canonical input evaluated, the bytes InputDigest hashes.
	Input []byte
}

// Event is the policy_decided payload of the evaluation decided at now, recording its input so that
// it can be re-evaluated bit for bit (see Decision.Event).
func (e Evaluation) Event(now time.Time) events.PolicyDecided {
	pd := e.Decision.Event(now, e.Revision, e.InputDigest)
	pd.Input = jsontext.Value(bytes.Clone(e.Input))
	return pd
}

// Load reads the bundle in dir (every .rego file below it, in Rego v1 syntax; files ending in
// _test.rego are tests, part of the revision but not compiled for evaluation), compiles it and prepares
// Query once. A bundle that does not parse or compile (strict mode: unused variables, shadowed
// imports and the like are errors) is an error.
func Load(ctx context.Context, dir string, opts ...Option) (*Engine, error) {
	files, err := readBundle(dir)
	if err != nil {
		return nil, err
	}
	e := &Engine{revision: revisionOf(files), timeout: DefaultTimeout}
	for _, o := range opts {
		o(e)
	}
	if e.timeout <= 0 {
		return nil, fmt.Errorf("policy timeout must be positive, not %s", e.timeout)
	}
	ropts := []func(*rego.Rego){
		rego.Query(Query), rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true), rego.Strict(true),
	}
	n := 0
	for _, f := range files {
		if !f.test() {
			ropts = append(ropts, rego.Module(f.path, string(f.content)))
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("policy bundle %s: no policy files (*.rego other than *_test.rego)", dir)
	}
	e.query, err = rego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policy bundle %s: %w", dir, err)
	}
	return e, nil
}

// Revision names the bundle the engine loaded: "sha256:" and the hex SHA-256 of a manifest with one
// line per .rego file, sorted by path relative to the bundle directory (bytewise, with / separators),
// each line being the hex SHA-256 of the file's content, two spaces, the path and a newline. It is the
// output format of sha256sum, so an auditor can recompute it with
//
//	cd examples/policies && find -L . -name '.?*' -prune -o -type f -name '*.rego' -print | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum
func (e *Engine) Revision() string { return e.revision }

// Evaluate decides in: it evaluates Query on the canonical input within the engine's timeout and checks
// the answer (see Decision). An evaluation error, a timeout, an undefined decision or an answer of
// the wrong shape is an error, never a decision. The context's own deadline applies too.
func (e *Engine) Evaluate(ctx context.Context, in Input) (Evaluation, error) {
	canonical, digest, err := in.Canonical()
	if err != nil {
		return Evaluation{}, err
	}
	d, err := e.decide(ctx, canonical, in.facts())
	if err != nil {
		return Evaluation{}, err
	}
	return Evaluation{Decision: d, Revision: e.revision, InputDigest: digest, Input: canonical}, nil
}

// ErrNotCanonical means a recorded input is not in the canonical form the engine evaluates.
var ErrNotCanonical = errors.New("policy input is not RFC 8785 canonical JSON")

// EvaluateRecorded decides a recorded input (policy_decided's input): exactly those bytes, which must
// be canonical (ErrNotCanonical otherwise), as Evaluate decided them when they were recorded. Errors
// are Evaluate's.
func (e *Engine) EvaluateRecorded(ctx context.Context, input []byte) (Evaluation, error) {
	canonical := jsontext.Value(bytes.Clone(input))
	if err := canonical.Canonicalize(); err != nil {
		return Evaluation{}, fmt.Errorf("policy input: %w", err)
	}
	if !bytes.Equal(canonical, input) {
		return Evaluation{}, ErrNotCanonical
	}
	f, err := factsOf(canonical)
	if err != nil {
		return Evaluation{}, err
	}
	d, err := e.decide(ctx, canonical, f)
	if err != nil {
		return Evaluation{}, err
	}
	return Evaluation{Decision: d, Revision: e.revision, InputDigest: Digest(canonical), Input: canonical}, nil
}

// decide evaluates the canonical input document and checks the answer against f.
func (e *Engine) decide(ctx context.Context, input []byte, f facts) (Decision, error) {
	answer, err := e.eval(ctx, input)
	if err != nil {
		return Decision{}, err
	}
	return parseDecision(answer, f)
}

// ErrUndefined means the bundle defines no decision for the input.
var ErrUndefined = errors.New("policy defines no decision (" + Query + " is undefined)")

// eval evaluates Query on the JSON document input and returns the decision as JSON.
func (e *Engine) eval(ctx context.Context, input []byte) ([]byte, error) {
	value, err := ast.ValueFromReader(bytes.NewReader(input))
	if err != nil {
		return nil, fmt.Errorf("policy input: %w", err)
	}
	evalCtx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	rs, err := e.query.Eval(evalCtx, rego.EvalParsedInput(value))
	// Whatever the engine made of a cancellation, the answer is the caller's cancellation or a timeout.
	if ctx.Err() != nil {
		return nil, fmt.Errorf("evaluate policy: %w", ctx.Err())
	}
	if evalCtx.Err() != nil {
		return nil, fmt.Errorf("evaluate policy: gave up after %s: %w", e.timeout, evalCtx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("evaluate policy: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, ErrUndefined
	}
	if len(rs) > 1 {
		return nil, fmt.Errorf("%w: %d results", ErrBadDecision, len(rs))
	}
	// OPA's values hold json.Number, which encoding/json (v1) writes as the number it is.
	answer, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDecision, err)
	}
	return answer, nil
}

// bundleFile is one .rego file of a bundle.
type bundleFile struct {
	path    string // relative to the bundle directory, with / separators
	content []byte
}

func (f bundleFile) test() bool { return strings.HasSuffix(f.path, "_test.rego") }

// readBundle reads every .rego file below dir, sorted by relative path. A symbolic link to a file counts
// as that file, and directories whose names start with a dot are skipped: a Kubernetes ConfigMap mounts
// each file as a link into a hidden, timestamped directory ("..2026_11_28_10_00_00.123/"), and reading
// those copies would name the bundle by its mount time rather than its content.
func readBundle(dir string) ([]bundleFile, error) {
	var files []bundleFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if filepath.Ext(path) != ".rego" || !isRegularFile(path, d) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, bundleFile{path: filepath.ToSlash(rel), content: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read policy bundle: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("policy bundle %s has no .rego files", dir)
	}
	slices.SortFunc(files, func(a, b bundleFile) int { return strings.Compare(a.path, b.path) })
	return files, nil
}

// isRegularFile reports whether d is a regular file or a symbolic link to one.
func isRegularFile(path string, d fs.DirEntry) bool {
	if d.Type()&fs.ModeSymlink == 0 {
		return d.Type().IsRegular()
	}
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// revisionOf is the bundle revision described at Engine.Revision.
func revisionOf(files []bundleFile) string {
	var manifest bytes.Buffer
	for _, f := range files {
		sum := sha256.Sum256(f.content)
		fmt.Fprintf(&manifest, "%s  %s\n", hex.EncodeToString(sum[:]), f.path)
	}
	return Digest(manifest.Bytes())
}
