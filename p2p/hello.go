package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
)

// The hello protocol, /vcsledger/<chain>/hello/1, runs on every new
// connection: each side opens a stream, writes its hello and closes its
// write side; the other answers with its own hello. A hello is text:
//
//	vcsledger-hello/1
//	chain <chain id>
//	genesis <hex genesis hash>
//	height <head height>
//	head <hex head block hash>
//	version <node version>
//
// A peer whose chain or genesis differs is disconnected and banned; until a
// peer's hello has arrived, its gossip waits in validation and its sync
// requests are not served.
const (
	helloMagic    = "vcsledger-hello/1"
	maxHelloBytes = 512
	helloLinger   = time.Second
)

// A hello is what a node says about itself on connect.
type hello struct {
	Chain   string
	Genesis ledger.Hash
	Height  uint64
	Head    ledger.Hash // zero when the node has no blocks
	Version string
}

func (h *hello) format() []byte {
	var b bytes.Buffer
	b.WriteString(helloMagic + "\n")
	b.WriteString("chain " + h.Chain + "\n")
	b.WriteString("genesis " + h.Genesis.String() + "\n")
	b.WriteString("height " + strconv.FormatUint(h.Height, 10) + "\n")
	b.WriteString("head " + h.Head.String() + "\n")
	b.WriteString("version " + h.Version + "\n")
	return b.Bytes()
}

// parseHello parses a hello strictly: the fields in order, canonical
// numbers, nothing after the version line.
func parseHello(data []byte) (*hello, error) {
	if len(data) > maxHelloBytes {
		return nil, fmt.Errorf("%w: hello of %d bytes", ErrProtocol, len(data))
	}
	fields := []string{"", "chain", "genesis", "height", "head", "version"}
	lines := strings.Split(string(data), "\n")
	if len(lines) != len(fields)+1 || lines[len(fields)] != "" {
		return nil, fmt.Errorf("%w: hello: want %d lines", ErrProtocol, len(fields))
	}
	if lines[0] != helloMagic {
		return nil, fmt.Errorf("%w: hello: missing %s", ErrProtocol, helloMagic)
	}
	val := make([]string, len(fields))
	for i := 1; i < len(fields); i++ {
		v, ok := strings.CutPrefix(lines[i], fields[i]+" ")
		if !ok {
			return nil, fmt.Errorf("%w: hello: line %d: want %q", ErrProtocol, i+1, fields[i])
		}
		val[i] = v
	}
	var h hello
	var err error
	h.Chain = val[1]
	if err := ledger.CheckChainID(h.Chain); err != nil {
		return nil, fmt.Errorf("%w: hello: %v", ErrProtocol, err)
	}
	if h.Genesis, err = ledger.ParseHash(val[2]); err != nil {
		return nil, fmt.Errorf("%w: hello: genesis: %v", ErrProtocol, err)
	}
	if h.Height, err = parseUint(val[3]); err != nil {
		return nil, fmt.Errorf("%w: hello: height: %v", ErrProtocol, err)
	}
	if h.Head, err = ledger.ParseHash(val[4]); err != nil {
		return nil, fmt.Errorf("%w: hello: head: %v", ErrProtocol, err)
	}
	h.Version = val[5]
	if err := checkVersion(h.Version); err != nil {
		return nil, fmt.Errorf("%w: hello: %v", ErrProtocol, err)
	}
	return &h, nil
}

// parseUint parses a canonical decimal uint64: no sign, no leading zeros.
func parseUint(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("not a canonical number: %q", clip(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a canonical number: %q", clip(s))
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// ourHello returns this node's hello.
func (h *Host) ourHello(ctx context.Context) *hello {
	me := &hello{Chain: h.cfg.Chain, Genesis: h.cfg.Genesis, Version: h.cfg.Version}
	if h.cfg.Source != nil {
		if head, err := h.cfg.Source.Head(ctx); err == nil {
			me.Height, me.Head = head.Height, head.Hash()
		}
	}
	return me
}

// sayHello runs the hello exchange with p as the side that opens the
// stream, then applies the outcome.
func (h *Host) sayHello(p peer.ID) {
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.HelloTimeout)
	defer cancel()
	their, err := h.exchangeHello(ctx, p)
	if err != nil {
		if h.ctx.Err() != nil || !h.isConnected(p) {
			return
		}
		if !h.peerState(p).verified() {
			h.log.Debug("hello failed", "peer", p, "err", err)
			h.refuse(p, err)
		}
		return
	}
	h.acceptHello(p, their)
}

func (h *Host) exchangeHello(ctx context.Context, p peer.ID) (*hello, error) {
	s, err := h.host.NewStream(ctx, p, h.helloID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	setDeadline(ctx, s, h.cfg.HelloTimeout)
	if _, err := s.Write(h.ourHello(ctx).format()); err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(s, maxHelloBytes+1))
	if err != nil {
		s.Reset()
		return nil, err
	}
	return parseHello(data)
}

// handleHello answers a peer's hello with ours, then applies the outcome.
// We answer even a mismatching hello, so that the peer learns why and
// bans us too.
func (h *Host) handleHello(s network.Stream) {
	p := s.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.HelloTimeout)
	defer cancel()
	setDeadline(ctx, s, h.cfg.HelloTimeout)
	data, err := io.ReadAll(io.LimitReader(s, maxHelloBytes+1))
	if err != nil {
		s.Reset()
		return
	}
	their, err := parseHello(data)
	if err != nil {
		s.Reset()
		h.refuse(p, err)
		return
	}
	if _, err := s.Write(h.ourHello(ctx).format()); err != nil {
		s.Reset()
	} else {
		s.Close()
	}
	h.acceptHello(p, their)
}

// acceptHello records a parsed hello from p, or refuses p when it is of
// another chain or genesis.
func (h *Host) acceptHello(p peer.ID, their *hello) {
	if their.Chain != h.cfg.Chain || their.Genesis != h.cfg.Genesis {
		h.refuse(p, fmt.Errorf("%w: chain %q genesis %s, ours %q %s", ErrRefused, their.Chain, their.Genesis, h.cfg.Chain, h.cfg.Genesis))
		return
	}
	if !h.isConnected(p) {
		return // gone meanwhile: its next connection runs a new hello
	}
	ps := h.peerState(p)
	first := ps.verify(their)
	if first {
		h.log.Debug("peer verified", "peer", p, "height", their.Height, "version", their.Version)
		h.host.ConnManager().TagPeer(p, "vcsledger", 10)
		h.syncKick()
	}
}

// refuse disconnects p. A peer of another chain or genesis, or one that
// broke the protocol, is also banned; one that merely failed (timeout,
// no hello protocol) may come back.
func (h *Host) refuse(p peer.ID, err error) {
	h.peerState(p).fail()
	switch {
	case errors.Is(err, ErrRefused):
		// Both sides run a hello; let the other one finish so that the
		// peer reads our hello and refuses us too.
		h.banAfter(p, err.Error(), helloLinger)
		return
	case isPeerFault(err):
		h.ban(p, err.Error())
		return
	}
	h.log.Debug("disconnecting peer", "peer", p, "err", err)
	h.host.Network().ClosePeer(p)
}

// setDeadline sets s's deadline to ctx's, or d from now.
func setDeadline(ctx context.Context, s network.Stream, d time.Duration) {
	t, ok := ctx.Deadline()
	if !ok {
		t = time.Now().Add(d)
	}
	s.SetDeadline(t)
}
