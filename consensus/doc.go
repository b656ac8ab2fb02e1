// Package consensus holds vcsledger's consensus engines as pure state
// machines, in the style of etcd's raft: an engine takes events (start, a
// tick of the clock, a message from the network, blocks appended by sync)
// and returns Actions (state to persist, messages to send, a block to
// append, evidence, when to wake it next). It does no I/O, reads no clock,
// starts no goroutines and uses no global randomness, so a deterministic
// in-memory simulation can test it (sim_test.go).
//
// # PoA
//
// PoA is the proof-of-authority engine with BFT finality (DESIGN §3). Each
// height runs rounds 0, 1, 2, ... of Tendermint's Algorithm 1 (Buchman,
// Kwon, Milosevic, "The latest gossip on BFT consensus", 2018): the round's
// proposer (ledger.ValidatorSet.Proposer) proposes a block, validators
// prevote and precommit, lock on a polka (lockedValue/lockedRound), keep the
// newest polka's block as their valid value (validValue/validRound) and
// propose it again with its POL round; a node that sees f+1 validators in a
// higher round skips to it; timeouts grow with the round (base +
// round*TimeoutDelta). A quorum (ValidatorSet.Quorum, by default more than
// 2/3) of precommits for a block in any round, with the block proposed in
// some round, commits it with a ledger.Certificate made of those precommits.
// Committed blocks are final. PoASeal checks the seal of stored and synced
// blocks (ledger.SealChecker).
//
// The chain makes no empty blocks: while App.Ready is false and no message
// for the height has arrived, no round starts; a proposer proposes only when
// App.Propose returns a block, and not before the parent's time plus
// BlockInterval.
//
// # Driving a PoA
//
// One goroutine owns the engine. On start it reads the head of its store and
// the last SignState it persisted (nil the first time), then:
//
//	e, err := consensus.NewPoA(consensus.Config{Chain: g.Chain, Validators: vals,
//		Signer: signer /* nil on a non-validator */, BlockInterval: interval, App: app}, head, st)
//	do(e.Start(now()))
//	for {
//		select {
//		case m := <-inbox: // from gossip, after ParseMessage
//			acts, err := e.Receive(now(), m) // err wraps ErrInvalid: score the peer down
//			do(acts)
//		case <-timer.C: // set from Actions.Wake
//			do(e.Tick(now()))
//		case <-poolChanged: // new work: a Tick polls App.Ready
//			do(e.Tick(now()))
//		case <-synced: // blocks appended by sync
//			do(e.Advance(now(), head))
//		}
//	}
//
// where do carries out Actions in order:
//
//  1. Persist: store the SignState durably (SignState.Format; ParseSignState
//     on restart). If that fails, drop Send: a message must never leave
//     the node before the state that signed it is durable, or a restart
//     could sign a conflicting one.
//  2. Send: broadcast each message (Message.Format) on the consensus topic.
//     The engine has counted its own messages already, so a one-validator
//     chain commits from Start and Tick alone.
//  3. Evidence: keep and serve (Evidence.Kind, Evidence.Format).
//  4. Commit: validate (ledger.ValidateNext with PoASeal) and append the
//     block durably, then tell clients. Do this before the next event: the
//     engine signs nothing for the next height until it is called again.
//  5. Behind: sync blocks from peers, then call Advance.
//  6. Wake: call Tick at or after this time.
//
// A validator's SignState holds its last signed message, its lock and valid
// value (with their blocks) and the few votes others may need from it after
// a restart; a restarted engine resumes from it and the store's head, sends
// its last message again and never signs a conflicting one. Besides
// Tendermint's rules the engine sends its own messages of the current round
// again every Rebroadcast, relays the votes that justify its round (with
// backoff) when a validator seems to lag, and sends a re-proposal's POL
// prevotes with it: gossip may lose messages, and a validator that restarts
// forgets what it received.
//
// Gossip validators can check a message with Message.Verify before
// forwarding it; Receive verifies again (it must not trust its caller).
// Receive, Tick, Start and Advance take the time as an argument; the engine
// never reads a clock. The App is called synchronously from these methods.
//
// # PoW
//
// The pow rules (DESIGN §3 pow, docs/FORMAT.md "Proof of work") are pure
// functions: NextBits (retargeting every N blocks toward the genesis
// interval, at most MaxRetargetStep bits a time), MedianTime,
// CheckPoWHeader and CheckFuture (the clock is passed in). PoWSeal checks
// stored and synced blocks (ledger.SealChecker). A Tree holds the blocks a
// node knows, main chain and side branches, with the fork choice: most
// cumulative work (sum of 2^bits), ties to the lower block hash; Fork and
// Branch give what a reorg switches. Solve searches nonces; a Miner runs
// Solve on worker goroutines (the one part of this package that starts
// goroutines: it only hashes, and Close stops and waits for them).
//
// # Limits
//
// Memory is bounded per height: messages of rounds more than 16 above the
// current one are not kept (only each validator's highest round, for the
// f+1 rule), each round keeps at most one vote per validator and type and
// two proposals (the second is evidence), and the next height's messages
// are buffered up to the same bounds. Rounds advance only by local timeouts
// or by f+1 validators, so Byzantine validators cannot make a node allocate
// without limit.
package consensus
