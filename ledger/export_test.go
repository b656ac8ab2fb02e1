package ledger

// ParsedLeaves returns the leaf hashes ParseBlockLeaves computed, for the
// tests of package ledger_test.
func ParsedLeaves(p *ParsedBlock) []Hash { return p.leaves }
