package main

import (
	_ "embed"
	"runtime/debug"
	"strings"

	"github.com/prometheus/common/version"
)

// versionFile is the one place the version is written; releases may still stamp another
// with -ldflags.
//
//go:embed VERSION
var versionFile string

// A plain `go build` in a git checkout gets no -ldflags, but the go command embeds the commit
// (`go run` and `go test` do not): take version.Revision and version.BuildDate from it so that
// --version and dify_exporter_build_info still name the build. Values stamped with -ldflags -X
// win; this fills only what is empty.
func init() {
	if version.Version == "" {
		version.Version = strings.TrimSpace(versionFile)
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		stampFromVCS(bi.Settings)
	}
}

// stampFromVCS fills the empty version.Revision from vcs.revision (suffixed "-modified" for a
// build from a dirty tree, as prometheus/common does) and the empty version.BuildDate from
// vcs.time (the commit time, RFC 3339).
func stampFromVCS(settings []debug.BuildSetting) {
	var rev, at string
	modified := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if version.Revision == "" && rev != "" {
		if modified {
			rev += "-modified"
		}
		version.Revision = rev
	}
	if version.BuildDate == "" && at != "" {
		version.BuildDate = at
	}
}
