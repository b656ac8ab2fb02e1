//go:build tools

// Package tools pins the module dependencies the project uses before code imports them.
package tools

import (
	_ "filippo.io/edwards25519"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/hdevalence/ed25519consensus"
	_ "github.com/libp2p/go-libp2p"
	_ "github.com/libp2p/go-libp2p-pubsub"
	_ "github.com/mattn/go-sqlite3"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/mod/sumdb/tlog"
)
