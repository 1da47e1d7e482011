// Command balidx is the balance indexer: see `balidx help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// main is the only place that handles signals: SIGINT and SIGTERM end the
// context run gets; a serving command also gets SIGHUP, to reload its
// clients file (other commands keep SIGHUP's default: the end).
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, serving := commands[firstArg(os.Args)]; serving {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		ctx = withReloads(ctx, hup)
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "balidx:", err)
		os.Exit(1)
	}
}

func firstArg(args []string) string {
	if len(args) < 2 {
		return ""
	}
	return args[1]
}

// reloadsKey carries main's SIGHUP channel in the context run gets.
type reloadsKey struct{}

func withReloads(ctx context.Context, c <-chan os.Signal) context.Context {
	return context.WithValue(ctx, reloadsKey{}, c)
}

// reloads is the channel of reload signals main set up, or nil (tests, and
// commands that reload nothing).
func reloads(ctx context.Context) <-chan os.Signal {
	c, _ := ctx.Value(reloadsKey{}).(<-chan os.Signal)
	return c
}

const usage = `balidx — an event-driven, cache-first balance indexer

Usage: balidx COMMAND [flags]

Commands:
  dev       everything in one process on an in-process simulated chain
  run       indexer + applier + HTTP tier against --rpc (embedded NATS unless --nats)
  indexer   follow --rpc and publish trusted blocks to NATS
  query     apply the stream to the local snapshot and serve HTTP
  status    print /v1/status of a running query node
  audit     compare the snapshot at its trusted block with the chain
            (--rpc, and --data of a stopped node or --admin of a running one)
  replay    re-derive blocks --from A and publish a correction where the
            stream and the chain disagree (indexer stopped; --rpc, --data)
  rebuild   build a fresh snapshot from the whole stream and swap it in
            (query node stopped; --data, --nats)
  snapshot  export FILE (from --data of a stopped node or --admin of a running
            one) or import FILE into a new --data: a new query node starts
            from it and catches up from the stream
  get       print the balances of an address (signed with --client-id and
            BALIDX_CLIENT_SECRET, or anonymous)

Run 'balidx COMMAND -h' for the flags of a command. Every flag can also be
set in the config file (--config, YAML, same names) or as BALIDX_<NAME>
in the environment (e.g. BALIDX_START_BLOCK); flags win over the
environment, which wins over the file.
`

// run is the whole program; main only adds signals and the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command")
	}
	cmd, rest := args[0], args[1:]
	if _, serving := commands[cmd]; serving {
		cfg, err := parseConfig(cmd, rest, getenv, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return err
		}
		return serve(ctx, cmd, cfg, stdout, stderr)
	}
	switch cmd {
	case "status":
		return status(ctx, rest, getenv, stdout, stderr)
	case "get":
		return get(ctx, rest, getenv, stdout, stderr)
	case "audit":
		return audit(ctx, rest, getenv, stdout, stderr)
	case "snapshot":
		return snapshotCmd(ctx, rest, getenv, stdout, stderr)
	case "rebuild":
		return rebuild(ctx, rest, getenv, stdout, stderr)
	case "replay":
		return replay(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
