// Command paydr synthesizes, validates and deploys paydr's two-region
// payment platform, runs it locally, and operates its disaster recovery.
// Run paydr --help for the commands.
//
// paydr links no AWS SDK client, so that its commands start in a few
// milliseconds; the commands that call AWS APIs (paydr dr, paydr serve) run
// in paydr-aws, which paydr finds beside itself or builds in its checkout
// (see paydr/internal/cli.ExecBackends). A test keeps the SDK out.
package main

import (
	"os"

	"paydr/internal/cli"
)

func main() { os.Exit(cli.Main(cli.ExecBackends(os.Stderr))) }
