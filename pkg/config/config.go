// Package config reads a service's configuration from its environment, one way for every service.
//
// Each service declares its own Config struct that embeds Base (what every service needs: NATS, the
// trust file, its HTTP address, profiling, logging, start and stop bounds) and, as it needs them,
// Signing (the five services that sign events) and OIDC (the services with an HTTP API). Fields
// name their variable in a github.com/caarlos0/env/v11 `env` tag; the other tags are this package's:
//
//	env:"GRANTLINE_X"            the variable; ",notEmpty" makes it required
//	envDefault:"..."             the default (a value set before Parse is the default otherwise)
//	help:"..."                   what --help says about it
//	secret:"true"                never shown: not in logs, not in errors, not in --help
//	validate:"positive"          a number or duration that must be above zero
//
// Parse reads the variables and reports every problem at once, each naming its variable, in the
// order of the struct's fields. Usage lists every variable with its default for --help, and
// LogValue shows the configuration with secrets hidden and the passwords of URLs masked (Mask, the
// one masker).
package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/caarlos0/env/v11"
)

// Parse fills cfg, a pointer to a configuration struct, from environ (os.Environ's form, KEY=value):
// each variable that is set replaces the field, an unset one takes its envDefault or keeps the value
// cfg already holds. It then checks the shared parts (the NATS key file, the signing key) and calls
// cfg's own Check method, if it has one. The error joins every problem, each naming its variable,
// in a stable order: unreadable or missing values in the order of cfg's fields, then values out of
// range, then the shared parts' checks, then Check's. Secret values never appear in it.
func Parse(cfg any, environ []string) error {
	vars := env.ToMap(environ)
	root := reflect.ValueOf(cfg)
	if root.Kind() != reflect.Pointer || root.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Parse needs a pointer to a struct, not %T", cfg)
	}
	leaves := variables(root.Elem())
	var errs []error
	malformed := map[string]bool{}
	if err := env.ParseWithOptions(cfg, env.Options{Environment: vars}); err != nil {
		var agg env.AggregateError
		if !errors.As(err, &agg) {
			return err
		}
		for _, e := range agg.Errors {
			name, err := explain(e, leaves, vars)
			malformed[name] = true
			errs = append(errs, err)
		}
	}
	for _, v := range leaves {
		if v.positive && !malformed[v.name] && !positive(v.value) {
			errs = append(errs, fmt.Errorf("%s must be above zero, not %s", v.name, show(v, v.value)))
		}
	}
	errs = append(errs, checkParts(root.Elem())...)
	if c, ok := cfg.(interface{ Check() error }); ok {
		errs = append(errs, c.Check())
	}
	return errors.Join(errs...)
}

// variable is one environment variable of a configuration struct.
type variable struct {
	name     string
	field    reflect.StructField
	value    reflect.Value
	required bool
	def      string
	hasDef   bool
	secret   bool
	positive bool
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// variables lists the env-tagged fields of v and of the structs it holds, in field order, as
// env/v11 visits them.
func variables(v reflect.Value) []variable {
	var out []variable
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, tagged := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" && !tagged {
			if fv.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
				out = append(out, variables(fv)...)
			}
			continue
		}
		def, hasDef := f.Tag.Lookup("envDefault")
		out = append(out, variable{name: name, field: f, value: fv, def: def, hasDef: hasDef,
			required: strings.Contains(","+opts+",", ",notEmpty,") || strings.Contains(","+opts+",", ",required,"),
			secret:   f.Tag.Get("secret") == "true", positive: f.Tag.Get("validate") == "positive"})
	}
	return out
}

// explain restates one of env/v11's errors with the variable's name, never a secret's value, and
// returns that name.
func explain(err error, leaves []variable, vars map[string]string) (string, error) {
	var unset env.VarIsNotSetError
	var empty env.EmptyVarError
	var parse env.ParseError
	switch {
	case errors.As(err, &unset):
		return unset.Key, fmt.Errorf("%s is required", unset.Key)
	case errors.As(err, &empty):
		return empty.Key, fmt.Errorf("%s is required", empty.Key)
	case errors.As(err, &parse):
		for _, v := range leaves {
			if v.field.Name != parse.Name || v.field.Type != parse.Type {
				continue
			}
			if v.secret {
				return v.name, fmt.Errorf("%s is malformed: %w", v.name, parse.Err)
			}
			return v.name, fmt.Errorf("%s=%q is malformed: %w", v.name, vars[v.name], parse.Err)
		}
	}
	return "", err
}

func positive(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() > 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() > 0
	case reflect.Float32, reflect.Float64:
		return v.Float() > 0
	}
	return false
}

// checker is a shared part of a configuration that checks more than its variables' syntax.
type checker interface{ check() error }

// checkParts runs the check of every shared part cfg holds, in field order.
func checkParts(v reflect.Value) []error {
	var errs []error
	for i := range v.NumField() {
		fv := v.Field(i)
		if !v.Type().Field(i).IsExported() || fv.Kind() != reflect.Struct {
			continue
		}
		if c, ok := fv.Interface().(checker); ok {
			errs = append(errs, c.check())
		}
		errs = append(errs, checkParts(fv)...)
	}
	return errs
}

// show is how a value appears in logs, errors and --help: secrets hidden, URL passwords masked.
func show(v variable, val reflect.Value) string {
	if v.secret {
		if val.IsZero() {
			return ""
		}
		return hidden
	}
	if s, ok := val.Interface().(fmt.Stringer); ok {
		return Mask(s.String())
	}
	return Mask(fmt.Sprint(val.Interface()))
}

const hidden = "xxxxx"

// Mask hides what a URL's user information may reveal in each URL of a comma-separated list: a
// password becomes xxxxx, and a user without one (which may be a token, as in nats://TOKEN@host)
// becomes xxxxx too. Anything that is not a URL with user information is returned unchanged.
func Mask(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), hidden)
		} else {
			u.User = url.User(hidden)
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// LogValue shows every variable of cfg (a configuration struct or a pointer to one) under its name
// in lower case without the GRANTLINE_ prefix, secrets hidden and URL passwords masked, for the
// start-up log line.
func LogValue(cfg any) slog.Value {
	v := reflect.Indirect(reflect.ValueOf(cfg))
	var attrs []slog.Attr
	for _, leaf := range variables(v) {
		key := strings.ToLower(strings.TrimPrefix(leaf.name, "GRANTLINE_"))
		attrs = append(attrs, slog.String(key, show(leaf, leaf.value)))
	}
	return slog.GroupValue(attrs...)
}

// Usage writes every variable of cfg (a configuration struct or a pointer to one, holding its
// defaults) to w, one a line: its name, its default or "required", and its help text.
func Usage(w io.Writer, cfg any) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range variables(reflect.Indirect(reflect.ValueOf(cfg))) {
		def := v.def
		switch {
		case v.required:
			def = "required"
		case v.secret && v.hasDef:
			def = hidden
		case !v.hasDef:
			def = show(v, v.value)
		}
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.name, def, v.field.Tag.Get("help"))
	}
	return tw.Flush()
}

// List is a comma-separated value such as GRANTLINE_NATS_MONITOR_URLS: each item is trimmed, blank
// items are dropped, and a value with no item at all is refused.
type List []string

// UnmarshalText reads a comma-separated list.
func (l *List) UnmarshalText(b []byte) error {
	var items []string
	for s := range strings.SplitSeq(string(b), ",") {
		if s = strings.TrimSpace(s); s != "" {
			items = append(items, s)
		}
	}
	if len(items) == 0 {
		return errors.New("names nothing")
	}
	*l = items
	return nil
}

// String writes the list back comma-separated.
func (l List) String() string { return strings.Join(l, ",") }
