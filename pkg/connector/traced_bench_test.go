package connector_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/grantline/grantline/pkg/connector"
	"github.com/grantline/grantline/pkg/telemetry"
)

// BenchmarkTraced is what tracing adds to a connector call that costs nothing itself: with tracing
// off (the no-op provider) and on (every span recorded and exported, here to io.Discard).
func BenchmarkTraced(b *testing.B) {
	g := connector.Grant{ID: "01JREQ"}
	ctx := context.Background()
	run := func(b *testing.B, c connector.Connector) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Inspect(ctx, g); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("untraced", func(b *testing.B) { run(b, &target{present: map[string]bool{}}) })
	b.Run("tracing off", func(b *testing.B) { run(b, connector.Traced("t", &target{present: map[string]bool{}})) })
	b.Run("tracing on", func(b *testing.B) {
		exp, err := telemetry.StdoutExporter(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		stop := telemetry.StartTracing("grantline-bench", exp, time.Second)
		b.Cleanup(func() { _ = stop(context.Background()) })
		run(b, connector.Traced("t", &target{present: map[string]bool{}}))
	})
}
