package pglocal

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// readyTimeout bounds waitReady when the caller's context has no earlier deadline.
const readyTimeout = 30 * time.Second

// CreateDatabase creates an empty database called name and returns its connection URL. It fails if the
// database exists or the name is not a valid identifier (at most 63 bytes).
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if name == "" || len(name) > 63 {
		return "", fmt.Errorf("create database %q: name must be 1 to 63 bytes", name)
	}
	if err := c.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return c.databaseURL(name), nil
}

// EnsureDatabase creates the database called name unless it exists, and returns its connection URL;
// a persistent development cluster calls it on every start.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		return "", fmt.Errorf("ensure database %q: %w", name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("ensure database %q: %w", name, err)
	}
	if exists {
		return c.databaseURL(name), nil
	}
	return c.CreateDatabase(ctx, name)
}

// DropDatabase drops the database called name, if it exists, disconnecting any sessions still using
// it: a test that forgot to close a pool must not make clean-up fail.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if err := c.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

func (c *Cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// waitReady polls until a client can connect and run a query. pg_ctl -w has normally seen the server
// ready already; this proves it from the client's side, over TCP, as the tests will connect.
func waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(ctx, url)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not accepting connections: %w", err)
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "select 1").Scan(&one)
}
