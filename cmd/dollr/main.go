// Command dollr serves the Dollr Open API for collections with realtime
// payment status over an embedded store and a sandbox payment network.
//
// Each subcommand lives in its own file and registers itself from init, so a
// new command is a new file: see register.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
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
	// SIGHUP (a closed terminal, a supervisor's reload) stops as gracefully
	// as SIGTERM: dollr has no configuration to reload.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
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
			// dollr help <command> [subcommand]: that command's --help.
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "dollr help: unknown command %q\n\n", args[1])
				usage(stderr)
				return 2
			}
			return c.Run(ctx, append(slices.Clone(args[2:]), "--help"))
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
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return 2
	}
	return -1
}

// parse runs fs.Parse. --help (or -h) prints the usage to stdout and returns
// 0, so `dollr serve --help | grep addr` works; a bad flag prints the error
// and the usage to stderr and returns 2. -1 means go on.
func parse(fs *flag.FlagSet, args []string) int {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(nil) // stderr again, for later fs.Usage calls
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		os.Stdout.Write(buf.Bytes())
		return 0
	}
	os.Stderr.Write(buf.Bytes())
	return 2
}

// subcommandUsage handles the word after a command with subcommands
// (merchants, slot): it returns the subcommand and -1 to go on, or an exit
// code to return at once: 0 after printing usage to stdout for help, 2 after
// printing to stderr which word is missing or unknown.
func subcommandUsage(command, usage string, args []string, subs ...string) (string, int) {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "dollr %s: a subcommand is required (%s)\n\n%s\n", command, strings.Join(subs, ", "), usage)
		return "", 2
	}
	switch sub := args[0]; {
	case slices.Contains(subs, sub):
		return sub, -1
	case sub == "-h" || sub == "-help" || sub == "--help" || sub == "help":
		fmt.Println(usage)
		return "", 0
	default:
		fmt.Fprintf(os.Stderr, "dollr %s: unknown subcommand %q (want %s)\n\n%s\n", command, sub, strings.Join(subs, " or "), usage)
		return "", 2
	}
}

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
