// Command dollr serves the Dollr Open API for collections with realtime
// payment status over an embedded store and a sandbox payment network.
//
// Each subcommand lives in its own file and registers itself from init, so a
// new command is a new file: see register.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of the binary.
type command struct {
	Summary string                                       // one line for `dollr --help`
	Run     func(ctx context.Context, args []string) int // exit code; args exclude the command name
}

var commands = map[string]command{}

// register adds a subcommand; call it from an init function.
func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("dollr: command registered twice: " + name)
	}
	commands[name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.Run(ctx, []string{"--help"})
			}
		}
		usage(os.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dollr: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.Run(ctx, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "dollr: a self-hostable Dollr Open API with realtime payment status and a sandbox payment network.")
	fmt.Fprintln(w, "\nUsage: dollr <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w, "\nRun 'dollr <command> --help' for a command's flags.")
}

// newFlagSet returns a flag set whose --help prints the usage line, the
// description and every flag with its default.
func newFlagSet(name, usageLine, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", usageLine, strings.TrimSpace(description))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns an exit code to return at once (0 after
// --help, 2 on a bad flag) or -1 to go on.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return 2
	}
	return -1
}

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
