package ledger

// ParsedLeaves returns the leaf hashes ParseBlockLeaves computed, for the
// tests of package ledger_test.
func ParsedLeaves(p *ParsedBlock) []Hash { return p.leaves }

// The one-pass parsers and the full parses they shortcut, for the tests
// that check they agree.
var (
	PlainKey        = plainKey
	ParseKeyFull    = parseKey
	ParseRecordFull = parseRecord
	IsSHA256Base64  = isSHA256Base64
)

// PlainRecord is parsePlainRecord returning the record.
func PlainRecord(b []byte) (*Record, bool) {
	var r Record
	return &r, parsePlainRecord(&r, string(b))
}
