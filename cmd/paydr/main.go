// Command paydr synthesizes, validates and deploys paydr's two-region
// payment platform, runs it locally, and operates its disaster recovery.
// Run paydr --help for the commands.
package main

import (
	"os"

	"paydr/internal/cli"
)

func main() { os.Exit(cli.Main()) }
