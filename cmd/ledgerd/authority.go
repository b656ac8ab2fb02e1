package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// defaultAuthorityDelay is how many heights after the next one a proposed
// change takes effect unless --effective says otherwise: room for the other
// operators to vote before it goes stale.
const defaultAuthorityDelay = 20

func newAuthorityCmd(stdout io.Writer) *cobra.Command {
	var af authorityFlags
	cmd := &cobra.Command{
		Use:   "authority",
		Short: "Change a poa chain's validator set: propose, vote, list",
		Long: `authority changes the validator set of a proof-of-authority chain. A change
adds or removes one validator. It is a record of its own kind in the chain's
log (docs/FORMAT.md, "Authority change"): it enters a block only with votes
(signatures) from more than 2/3 of the validators in force at that height,
and takes effect at the effective height it states, at least 2 heights after
the block that includes it. Until then the old set decides blocks.

Each operator runs these commands against their own node, with the node's
home directory: the key in DIR/node.key signs the vote, and the node's HTTP
API (DIR/config.json "http", or --node) receives it and gossips it to the
other validators. Once the votes reach the quorum the next proposer puts the
change in a block; the chain then makes blocks, empty if need be, until the
change is in force.

  1. An operator proposes:  ledgerd authority propose --home DIR --add KEY --name NAME
                            ledgerd authority propose --home DIR --remove KEY
  2. The others vote:       ledgerd authority vote --home DIR
  3. Anyone watches:        ledgerd authority list --home DIR   (GET /v1/validators)

Rules: adding a key already in the set, removing a key not in it, and removing
when the set would drop below 4 validators are refused; votes by keys not in
the set do not count. A change whose votes come in after its effective height
minus 2 is stale: propose it again with a later --effective. To replace a
validator of a four-validator set, add the new one first, then remove the old.
A new validator's operator starts its node (ledgerd run, same genesis) before
the effective height; it follows the chain and begins to sign at that height.

Each node keeps the proposed changes and their votes on disk and gossips them
again every few seconds: restarts lose no vote, and a node that was down
learns them.

Exit status: 0 done; 2 otherwise (bad flags, a home without a node key, a
node that cannot be reached, a key that is not a validator, a change the
node refuses), with the reason on stderr.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newAuthorityProposeCmd(stdout, &af), newAuthorityVoteCmd(stdout, &af), newAuthorityListCmd(stdout, &af))
	return cmd
}

type authorityFlags struct {
	home  string
	node  string
	token string
}

func (f *authorityFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.home, "home", "", "the node's home directory: its key signs, its HTTP API receives (required)")
	fl.StringVar(&f.node, "node", "", "node URL (default: http://<the home's config.json \"http\">, else http://127.0.0.1:8080)")
	fl.StringVar(&f.token, "token", "", "bearer token for the node's writes (default: the home's write_token; env LEDGERD_WRITE_TOKEN)")
}

// connect returns the node's key, a client of its API and its validator
// set.
func (f *authorityFlags) connect(ctx context.Context) (*ledger.Signer, *api.Client, *api.ValidatorSet, error) {
	if f.home == "" {
		return nil, nil, nil, usageErrorf("--home is required")
	}
	priv, err := readKey(filepath.Join(f.home, keyFile))
	if err != nil {
		return nil, nil, nil, usageErrorf("--home %s: %v", f.home, err)
	}
	signer, err := ledger.NewSigner(priv)
	if err != nil {
		return nil, nil, nil, err
	}
	fc, err := readFileConfig(filepath.Join(f.home, configFile))
	if err != nil {
		return nil, nil, nil, err
	}
	url := f.node
	if url == "" {
		url = "http://127.0.0.1:8080"
		if fc.HTTP != "" {
			url = "http://" + fc.HTTP
		}
	}
	token := f.token
	if token == "" {
		token = os.Getenv("LEDGERD_WRITE_TOKEN")
	}
	if token == "" {
		token = fc.WriteToken
	}
	c, err := api.NewClient(url, nil)
	if err != nil {
		return nil, nil, nil, usageErrorf("%v", err)
	}
	c = c.WithToken(token)
	vs, err := c.Validators(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot reach the node at %s (--node, or the home's config.json \"http\"): %w", url, err)
	}
	if vs.Height == 0 {
		return nil, nil, nil, fmt.Errorf("node %s: this chain's validator set does not change", url)
	}
	return signer, c, vs, nil
}

// mustValidate refuses a key that is not in vs, the set of the next
// height: only its validators propose and vote.
func mustValidate(signer *ledger.Signer, vs *api.ValidatorSet) error {
	for _, v := range vs.Validators {
		if v.Key == signer.Public() {
			return nil
		}
	}
	return fmt.Errorf("this home's key %s is not a validator at height %d: only the validators in force propose and vote (ledgerd authority list)",
		signer.Public(), vs.Height)
}

func newAuthorityProposeCmd(stdout io.Writer, af *authorityFlags) *cobra.Command {
	var add, remove, name string
	var effective, delay uint64
	cmd := &cobra.Command{
		Use:   "propose (--add KEY --name NAME | --remove KEY) [--effective HEIGHT | --delay N]",
		Short: "Propose adding or removing a validator, with this node's vote",
		Long: `propose builds a change that adds (--add, with --name) or removes (--remove)
the validator with public key KEY (64 hex digits, as ledgerd keygen prints
it), effective at --effective, or --delay heights after the next height
(default 20), signs it with the home's key (which must be a validator) and
sends it to the node, which gossips it. It prints the change's id, by which
the other operators vote for it.`,
		Example: `  ledgerd authority propose --home ./node0 --add 3f2a...c9 --name erin
  ledgerd authority propose --home ./node0 --remove 9b1e...07 --effective 5000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var c ledger.AuthorityChange
			switch {
			case add != "" && remove == "" && name != "":
				c.Op, c.Name = ledger.AuthorityAdd, name
				k, err := ledger.ParsePublicKey(add)
				if err != nil {
					return usageErrorf("--add: %v", err)
				}
				c.Validator = k
			case remove != "" && add == "" && name == "":
				c.Op = ledger.AuthorityRemove
				k, err := ledger.ParsePublicKey(remove)
				if err != nil {
					return usageErrorf("--remove: %v", err)
				}
				c.Validator = k
			default:
				return usageErrorf("want --add KEY --name NAME, or --remove KEY")
			}
			if cmd.Flags().Changed("effective") && cmd.Flags().Changed("delay") {
				return usageErrorf("--effective and --delay exclude each other")
			}
			signer, cl, vs, err := af.connect(ctx)
			if err != nil {
				return err
			}
			if err := mustValidate(signer, vs); err != nil {
				return err
			}
			c.Effective = effective
			if c.Effective == 0 {
				c.Effective = vs.Height + delay
			}
			g, err := readGenesis(filepath.Join(af.home, genesisFile))
			if err != nil {
				return err
			}
			c.Chain = g.Chain
			if err := c.Check(); err != nil {
				return usageErrorf("%v", err)
			}
			c.AddVote(c.Vote(signer))
			info, err := cl.SubmitAuthority(ctx, &c)
			if err != nil {
				return fmt.Errorf("the node refused the change: %w", err)
			}
			fmt.Fprintf(stdout, "proposed %s\n", describe(info))
			fmt.Fprintf(stdout, "the other validators vote with: ledgerd authority vote --home DIR %s\n", info.ID.String()[:12])
			return nil
		},
	}
	af.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&add, "add", "", "public key of the validator to add")
	fl.StringVar(&name, "name", "", "name of the validator to add (1 to 64 of [A-Za-z0-9._-])")
	fl.StringVar(&remove, "remove", "", "public key of the validator to remove")
	fl.Uint64Var(&effective, "effective", 0, "the first height the changed set decides")
	fl.Uint64Var(&delay, "delay", defaultAuthorityDelay, "effective this many heights after the next one (at least 2)")
	return cmd
}

func newAuthorityVoteCmd(stdout io.Writer, af *authorityFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vote [ID...]",
		Short: "Vote for proposed changes with this node's key",
		Long: `vote signs the proposed changes the node knows (ledgerd authority list shows
them), or only those whose id starts with one of the IDs given, with the
home's key, and sends the votes to the node. Read a change before voting for
it: the vote is this validator's consent. Voting twice is harmless.`,
		Example: "  ledgerd authority vote --home ./node1 5c0ffee1a2b3",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			signer, cl, vs, err := af.connect(ctx)
			if err != nil {
				return err
			}
			if err := mustValidate(signer, vs); err != nil {
				return err
			}
			n := 0
			for _, p := range vs.Proposed {
				if len(args) > 0 && !hasPrefixAny(p.ID.String(), args) {
					continue
				}
				c, err := ledger.ParseAuthorityChange([]byte(p.Change))
				if err != nil {
					return fmt.Errorf("node serves a malformed change: %w", err)
				}
				c.AddVote(c.Vote(signer))
				info, err := cl.SubmitAuthority(ctx, c)
				if err != nil {
					return fmt.Errorf("the node refused the vote for %s: %w", p.ID, err)
				}
				fmt.Fprintf(stdout, "voted %s\n", describe(info))
				n++
			}
			if n == 0 && len(args) > 0 {
				return fmt.Errorf("no proposed change with an id starting with %s (ledgerd authority list)", strings.Join(args, " or "))
			}
			if n == 0 {
				return fmt.Errorf("no proposed change to vote for (ledgerd authority list)")
			}
			return nil
		},
	}
	af.register(cmd)
	return cmd
}

func newAuthorityListCmd(stdout io.Writer, af *authorityFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Show the validator set, pending and proposed changes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, _, vs, err := af.connect(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "validators at height %d (quorum %d of %d):\n", vs.Height, vs.Quorum, len(vs.Validators))
			for _, v := range vs.Validators {
				fmt.Fprintf(stdout, "  %s %s\n", v.Key, v.Name)
			}
			fmt.Fprintf(stdout, "pending (committed, not in force yet): %d\n", len(vs.Pending))
			for _, p := range vs.Pending {
				fmt.Fprintf(stdout, "  %s (committed at height %d)\n", describe(&p), p.Height)
			}
			fmt.Fprintf(stdout, "proposed (collecting votes): %d\n", len(vs.Proposed))
			for _, p := range vs.Proposed {
				fmt.Fprintf(stdout, "  %s\n", describe(&p))
			}
			return nil
		},
	}
	af.register(cmd)
	return cmd
}

func describe(p *api.AuthorityInfo) string {
	what := "remove " + p.Validator.String()
	if p.Op == ledger.AuthorityAdd {
		what = "add " + p.Validator.String() + " (" + p.Name + ")"
	}
	return fmt.Sprintf("%s: %s from height %d, %d of %d votes", p.ID.String()[:12], what, p.Effective, p.Votes, p.Quorum)
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(s, strings.ToLower(p)) {
			return true
		}
	}
	return false
}
