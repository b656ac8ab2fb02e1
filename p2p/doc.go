// Package p2p is a vcsledger node's network layer (DESIGN §5): a libp2p
// host per node, the hello handshake that keeps other chains out, the
// gossip topics, the block-sync stream protocol and the Syncer that catches
// a store up. It imports only ledger of ours; the node wires it to the
// store, the consensus engine and the mempool.
//
// # Identity and transports
//
// A node's peer id is its ed25519 key (Config.Key; a validator's is its
// validator key), so a peer id names a validator. Connections are TCP with
// Noise security and yamux streams, or QUIC (/udp/<port>/quic-v1, TLS 1.3
// built in) when a listen address asks for it. Relays, hole punching,
// NAT port mapping and libp2p metrics are off.
//
// # Peers: bootstrap, reconnects, mDNS
//
// Config.Bootstrap lists peers as multiaddrs ending in /p2p/<id>. The host
// dials them at start and whenever a link drops, with a per-peer
// exponential backoff from Config.ReconnectMin (1 s) to ReconnectMax
// (1 min) plus up to 25% jitter; Unblock redials at once. Bootstrap peers
// are protected from the connection manager's trimming. Peers that dial us
// are kept but not redialed by us.
//
// mDNS discovery (Config.MDNS) is not in this build: libp2p's mdns package
// needs github.com/libp2p/zeroconf/v2, which is not in go.sum, so Validate
// refuses MDNS = true with ErrNoMDNS rather than ignore it.
//
// # Hello
//
// On every new connection both sides run /vcsledger/<chain>/hello/1 (see
// hello.go for the text format): chain id, genesis hash, head height and
// hash, node version. A peer reporting another chain or genesis hash is
// banned (after a one-second linger, so that it reads our hello and bans
// us too); a peer without the protocol (another chain id, another program)
// is disconnected. Until its hello is accepted a peer's gossip waits in
// validation (up to Config.HelloTimeout, 10 s) and its sync requests wait
// likewise. Peers lists the peers that passed, with their heads, updated
// by hellos, by sync status requests and by the blocks they forward.
//
// # Gossip
//
// Topics are "vcsledger/<chain>/mempool", "attest", "consensus" and
// "blocks" (gossipsub v1.1). A message's id is SHA-256 of its data, and
// messages carry no pubsub author, sequence number or signature
// (StrictNoSign): every payload is self-authenticating (signed votes and
// attestations, certified blocks) or needs no author (pending keys), and
// an identical payload from two nodes is one message. So Handler sees the
// peer that forwarded a message, not its author.
//
// Every message runs through the topic validator before it is delivered
// or forwarded: the size cap (Config.MaxMessageBytes, 16 MiB, for
// consensus and blocks, so that blocks of ~60,000 records can be gossiped;
// Config.MaxPoolMessageBytes, 1 MiB, for mempool and attest), the sender's
// hello, then Handler.Validate. A rejected message is not forwarded.
// Validators run concurrently (not in message order).
//
// libp2p's default queues (32 messages) silently drop bursts; here the
// per-peer outbound queue, the validation queue and throttle, and each
// subscription's buffer are Config.QueueSize (8,192) messages. Drops that
// still happen are counted (Drops) and logged. Memory is bounded by count,
// not bytes: a slow peer can hold QueueSize messages in our outbound queue.
// WaitTopicPeers waits for peers in our mesh for a topic; messages
// published before a fresh topic's mesh forms (about one heartbeat, 1 s)
// may reach no one.
//
// # Peer scoring and bans
//
// Gossipsub peer scoring is on. Per topic, invalid messages weigh
// -10 × count² (decaying by 0.997 a second, a half-life of about four
// minutes); gossip misbehaviour (broken IHAVE promises, early re-grafts)
// weighs -1 × (count-10)². Thresholds: gossip -100, publish -500,
// graylist -1,000 (10 invalid messages on one topic). IP colocation is not
// penalised: testnets and operators run several nodes behind one address.
// A peer at or below the graylist threshold is banned. Independently, the
// host counts each peer's invalid gossip messages and malformed sync
// responses (Config.MaxInvalid, 10, within Config.InvalidWindow, 10 min;
// counts survive reconnects) and bans it at the limit. A ban closes the
// peer's connections and makes the connection gater refuse it both ways
// for Config.BanDuration (1 h). A peer of another genesis, or that broke
// the hello or served an invalid block to the Syncer, is banned at once.
// Block and Unblock do the same by hand, without expiry (operators; tests
// partition networks with them).
//
// # Sync protocol
//
// /vcsledger/<chain>/sync/1 serves status (the head header), headers and
// blocks by height range, one request per stream; see syncproto.go for
// the format. Blocks are ledger.Block.Format, which carries the
// certificate and attestations. A response holds at most
// Config.SyncMaxBlocks (256) blocks or 1,024 headers, and blocks up to the
// smaller of the client's and the server's Config.SyncMaxBytes (32 MiB),
// but at least one block (a block may be up to ledger.MaxBlockBytes). The
// server reads the request within 10 s and writes the response within
// Config.SyncTimeout (1 min); the client reads under the same deadline
// (or its context's) and refuses responses over its limits.
//
// /vcsledger/<chain>/sync/2 is version 1 plus one request, cosigs, for
// the validators' co-signatures of the checkpoints of a range of heights
// (cosigsync.go): a node that was down, or is new, gets those of its head
// from its peers instead of waiting for the next block's gossip. A host
// serves sync/2 when its Source is a CosigSource; the Syncer still speaks
// sync/1.
//
// # Syncer
//
// A Syncer asks every connected peer for its head, picks the highest
// above ours and fetches from it in a pipeline of three goroutines: one
// requests the next range of blocks while another verifies blocks, each
// on top of those it verified before (ledger.ValidateParsed and the
// node's SealChecker, the log hashes of blocks not stored yet held in
// memory), and the third appends the verified blocks, one transaction
// each, while the node's append lock (SyncConfig.Lock) is held and only
// on the very head a block was verified on, so blocks committed by
// consensus under the same lock never race with synced ones; a block at a
// height we already have must be the block we have. At most one fetched
// range and 4 verified blocks wait. A peer that serves an invalid or
// different block is banned and the Syncer goes on with the next best
// peer; the blocks before it are stored, nothing from it on. Nothing that
// fails validation is stored. SyncConfig.OnAppend tells
// the node of each stored block. Run syncs when kicked, when a peer
// passes the hello and every SyncConfig.Interval (10 s).
//
// # Resource limits
//
// The resource manager uses a fixed limiter (the same on every machine):
// libp2p's default limits and service limits scaled to Config.MaxMemory
// (1 GiB) and Config.MaxFDs (1,024), then these caps:
//
//	scope                  conns (in/out)      streams (in/out)     memory
//	system                 256 (256/256)       4096 (2048/4096)     1 GiB
//	transient              96 (48/96)          512 (256/512)        160 MiB
//	each peer              8                   768 (384/768)        192 MiB
//	hello protocol         -                   256 (128/128)        16 MiB
//	hello, each peer       -                   4 (2/2)              1 MiB
//	sync protocol          -                   128 (64/64)          256 MiB
//	sync, each peer        -                   8 (4/4)              64 MiB
//
// File descriptors: 1,024 system, 16 per peer. The system connection caps
// follow Config.MaxConns. The connection manager keeps between
// Config.ConnLow (32) and Config.ConnHigh (96) connections: above the high
// mark it closes the least useful down to the low mark, never bootstrap
// peers, and not connections younger than one minute.
package p2p
