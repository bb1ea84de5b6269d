package main

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	register("version", command{
		Summary: "print the version: the module version, the VCS revision and the Go toolchain",
		Run:     runVersion,
	})
}

// buildInfo is what the binary knows about its own build: the module version
// ("(devel)" for a build from a checkout), the VCS revision and whether the
// tree had uncommitted changes (when built with VCS stamping), and Go's version.
type buildInfo struct {
	Version, Revision, GoVersion string
	Modified                     bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "unknown", Revision: "unknown", GoVersion: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version, b.GoVersion = info.Main.Version, info.GoVersion
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b buildInfo) String() string {
	s := fmt.Sprintf("dollr %s (revision %s", b.Version, b.Revision)
	if b.Modified {
		s += ", modified"
	}
	return s + ", " + b.GoVersion + ")"
}

func runVersion(_ context.Context, args []string) int {
	fs := newFlagSet("version", "dollr version", `Prints the build's version, VCS revision and Go version.`)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	fmt.Println(readBuildInfo())
	return 0
}

// registerBuildInfo exports dollr_build_info{version,revision,goversion} 1, so
// dashboards can tell which build each server runs.
func registerBuildInfo(reg prometheus.Registerer) {
	b := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dollr_build_info",
		Help: "The running build: always 1, with the version, VCS revision and Go version as labels.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion,
			"modified": fmt.Sprint(b.Modified)},
	})
	g.Set(1)
	reg.MustRegister(g)
}
