package ledger_test

import "crypto/sha256"

// A test-only implementation of the RFC 6962 §2.1 Merkle tree, written from
// the RFC and independent of golang.org/x/mod/sumdb/tlog, against which the
// ledger's log and the golden vectors are checked.

type rfcHash = [32]byte

func rfcLeaf(data []byte) rfcHash { return sha256.Sum256(append([]byte{0}, data...)) }

func rfcNode(l, r rfcHash) rfcHash {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// rfcSplit returns k, the largest power of two smaller than n (n > 1).
func rfcSplit(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// rfcRoot is MTH(D[n]).
func rfcRoot(d []rfcHash) rfcHash {
	switch len(d) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return d[0]
	}
	k := rfcSplit(len(d))
	return rfcNode(rfcRoot(d[:k]), rfcRoot(d[k:]))
}

// rfcPath is PATH(m, D[n]), the audit path of leaf m.
func rfcPath(m int, d []rfcHash) []rfcHash {
	if len(d) <= 1 {
		return nil
	}
	k := rfcSplit(len(d))
	if m < k {
		return append(rfcPath(m, d[:k]), rfcRoot(d[k:]))
	}
	return append(rfcPath(m-k, d[k:]), rfcRoot(d[:k]))
}

// rfcProof is PROOF(m, D[n]), the consistency proof from size m (0 < m < n).
func rfcProof(m int, d []rfcHash) []rfcHash { return rfcSubproof(m, d, true) }

func rfcSubproof(m int, d []rfcHash, b bool) []rfcHash {
	n := len(d)
	if m == n {
		if b {
			return nil
		}
		return []rfcHash{rfcRoot(d)}
	}
	k := rfcSplit(n)
	if m <= k {
		return append(rfcSubproof(m, d[:k], b), rfcRoot(d[k:]))
	}
	return append(rfcSubproof(m-k, d[k:], false), rfcRoot(d[:k]))
}
