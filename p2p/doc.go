// Package p2p is a vcsledger node's network layer.
package p2p
