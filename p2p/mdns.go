package p2p

// mDNS discovery needs github.com/libp2p/go-libp2p/p2p/discovery/mdns,
// whose dependency github.com/libp2p/zeroconf/v2 is not in this module's
// go.sum; until it is, Config.MDNS is refused by Validate (ErrNoMDNS).
const mdnsAvailable = false

func (h *Host) startMDNS() error { return ErrNoMDNS }
