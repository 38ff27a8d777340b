package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"

	"github.com/irxfed/irx/cmd/internal/version"
)

func versionCommand() *command {
	return &command{
		name:  "version",
		usage: "version",
		short: "Show irxctl's version and the commit it was built from",
		setup: func(*flag.FlagSet) action {
			return func(_ context.Context, c *cli, _ []string) error {
				_, err := fmt.Fprintf(c.stdout, "irxctl %s %s %s/%s\n", version.Read(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return err
			}
		},
	}
}
