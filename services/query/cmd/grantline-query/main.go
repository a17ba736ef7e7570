// Command grantline-query runs the read side: the query API and the projection of the evidence stream
// into PostgreSQL. "grantline-query rebuild SCHEMA" rebuilds the read side from sequence 1 into SCHEMA
// beside the live one, and "grantline-query compare SCHEMA" checks the two agree.
// `grantline-query --help` lists its configuration (queryd.Config).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/grantline/grantline/pkg/ops"
	"github.com/grantline/grantline/services/query/queryd"
)

func main() {
	os.Exit(ops.Main("query", queryd.Defaults(), func(ctx context.Context, cfg queryd.Config, log *slog.Logger) error {
		return queryd.Command(ctx, cfg, os.Args[1:], os.Stdout, log)
	}))
}
