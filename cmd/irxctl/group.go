package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// groupKeySize is what AlertService requires of a sharing group's key.
const groupKeySize = 32

// keyFlags are the ways a group command gets a key: from a file the
// members agreed on, or made here and handed to them through a file (or,
// when asked, on stdout). The key never reaches a log or an error message.
type keyFlags struct {
	file     *string
	generate *bool
	out      *string
	force    *bool
	show     *bool
}

func registerKeyFlags(fs *flag.FlagSet) keyFlags {
	return keyFlags{
		file:     fs.String("group-key-file", "", "read the group key from `FILE` (64 hex digits, base64 or 32 raw bytes; - for stdin)"),
		generate: fs.Bool("generate-key", false, "make a new random key (give it to the other members with --key-out or --show-key)"),
		out:      fs.String("key-out", "", "with --generate-key, write the key in hex to `FILE` (0600)"),
		force:    fs.Bool("force", false, "with --key-out, replace an existing file"),
		show:     fs.Bool("show-key", false, "print the key in hex on stdout (table output only)"),
	}
}

// pendingKey is a key and, for a generated one, the file it goes to: the
// file is written aside first and put in place only once the node has
// stored the key, so neither a failed call leaves a key the group does not
// use nor a stored key lacks its file.
type pendingKey struct {
	key  []byte
	tmp  string // written, not yet in place
	dest string
}

// commit puts the key file in place.
func (p *pendingKey) commit() error {
	if p.tmp == "" {
		return nil
	}
	if err := os.Rename(p.tmp, p.dest); err != nil {
		return fmt.Errorf("key stored at the node, but writing --key-out %s failed: %w", p.dest, err)
	}
	p.tmp = ""
	return nil
}

// abort removes a key file not put in place.
func (p *pendingKey) abort() {
	if p.tmp != "" {
		_ = os.Remove(p.tmp)
		p.tmp = ""
	}
}

// key returns the key the flags ask for; for a generated one with
// --key-out, the file is written aside and must be committed or aborted.
func (k keyFlags) key(c *cli) (*pendingKey, error) {
	if *k.show && (c.output == "json" || c.output == "yaml") {
		return nil, usageErrorf("--show-key prints the key beside the table; leave out -o %s", c.output)
	}
	switch {
	case *k.file != "" && *k.generate:
		return nil, usageErrorf("--group-key-file and --generate-key exclude each other")
	case *k.file != "":
		if *k.out != "" {
			return nil, usageErrorf("--key-out is for a generated key; the key is already in %s", *k.file)
		}
		key, err := readGroupKey(c.stdin, *k.file)
		if err != nil {
			return nil, err
		}
		return &pendingKey{key: key}, nil
	case *k.generate:
		if *k.out == "" && !*k.show {
			return nil, usageErrorf("--generate-key needs --key-out FILE or --show-key: the other members need the same key")
		}
		key := make([]byte, groupKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		p := &pendingKey{key: key}
		if *k.out != "" {
			if err := p.writeAside(*k.out, *k.force); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	return nil, usageErrorf("a key is required: --group-key-file FILE, or --generate-key with --key-out FILE")
}

func (p *pendingKey) writeAside(dest string, force bool) error {
	if _, err := os.Lstat(dest); err == nil && !force {
		return usageErrorf("--key-out %s exists; use --force to replace it", dest)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--key-out: %w", err)
	}
	dir, base := filepath.Split(dest)
	if dir == "" {
		dir = "."
	}
	// CreateTemp makes the file 0600.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("--key-out: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(p.key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("--key-out: %w", err)
	}
	p.tmp, p.dest = f.Name(), dest
	return nil
}

// readGroupKey reads a key as the members exchange it: 64 hex digits or
// base64 text (surrounding white space ignored), or the 32 bytes
// themselves when they are not text. Errors never quote the file's
// content.
func readGroupKey(stdin io.Reader, path string) ([]byte, error) {
	var (
		raw []byte
		err error
	)
	if path == "-" {
		raw, err = io.ReadAll(io.LimitReader(stdin, 4096))
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--group-key-file: %w", err)
	}
	text := string(bytes.TrimSpace(raw))
	if k, err := hex.DecodeString(text); err == nil && len(k) == groupKeySize {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(text); err == nil && len(k) == groupKeySize {
			return k, nil
		}
	}
	// 32 bytes of text (a 16-byte key in hex, a passphrase) are not taken
	// for the raw key: members reading the file with another tool would
	// get another key. Random bytes are text with negligible probability.
	if len(raw) == groupKeySize && !isText(raw) {
		return raw, nil
	}
	return nil, usageErrorf("--group-key-file %s: want a %d-byte key as 64 hex digits, base64, or the raw bytes (found %d bytes that are none of these)",
		path, groupKeySize, len(raw))
}

func isText(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' && c != '\n' && c != '\r' || c > '~' {
			return false
		}
	}
	return true
}

func groupCommand() *command {
	return &command{
		name:  "group",
		usage: "group COMMAND",
		short: "Manage sharing groups: peers that exchange sightings as keyed digests of their values",
		subs: []*command{
			{
				name:  "put",
				usage: "group put NAME --members TEAM,... (--group-key-file FILE | --generate-key --key-out FILE)",
				short: "Create or replace a sharing group",
				long: `Every member configures the same group name and the same 32-byte key, agreed
out of band: one makes it with --generate-key --key-out FILE and hands the file
to the others, who give it with --group-key-file. The node keeps the key in the
team's replicated state and never returns it; irxctl prints it only with
--show-key. Putting a group again with another key starts its sightings
over; under the same key only the members change, and a member taken out is
told to drop the digests we sent it. See docs/alerts.md for what sightings
hide and what not.`,
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					var members stringsFlag
					fs.Var(&members, "members", "the peer `TEAM`s in the group (this team is implied; repeatable or comma-separated)")
					kf := registerKeyFlags(fs)
					return func(ctx context.Context, c *cli, args []string) error {
						if len(members) == 0 {
							return usageErrorf("--members is required")
						}
						pk, err := kf.key(c)
						if err != nil {
							return err
						}
						defer pk.abort()
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							resp, err := cl.PutSharingGroup(ctx, &irxv1.PutSharingGroupRequest{Group: &irxv1.SharingGroup{
								Name: args[0], MemberTeamIds: members, Key: pk.key,
							}})
							if err != nil {
								return err
							}
							if err := pk.commit(); err != nil {
								return err
							}
							return c.printGroupWithKey(resp.GetGroup(), pk, *kf.show)
						})
					}
				},
			},
			{
				name:     "list",
				usage:    "group list",
				short:    "List the sharing groups: members, key id (never the key), last change",
				connects: true, printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, _ []string) error {
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							resp, err := cl.ListSharingGroups(ctx, &irxv1.ListSharingGroupsRequest{})
							if err != nil {
								return err
							}
							return c.printList(resp, "groups", len(resp.GetGroups())+len(resp.GetPendingWithdrawals()), func(w io.Writer) error {
								if err := writeGroups(w, resp.GetGroups()); err != nil {
									return err
								}
								return writeWithdrawals(w, resp.GetPendingWithdrawals())
							})
						})
					}
				},
			},
			{
				name:  "delete",
				usage: "group delete NAME",
				short: "Delete a sharing group; its members are told to drop the digests we sent them",
				long: `The group's key, our digests under it and what its members sent us go, with
the sighting alerts they made. The leader tells each member to drop what we
sent it; "group list" shows the members not yet told (an unreachable or
disabled peer is told when it can be reached).`,
				minArgs: 1, maxArgs: 1,
				connects: true,
				setup: func(*flag.FlagSet) action {
					return func(ctx context.Context, c *cli, args []string) error {
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							if _, err := cl.DeleteSharingGroup(ctx, &irxv1.DeleteSharingGroupRequest{Name: args[0]}); err != nil {
								return err
							}
							_, err := fmt.Fprintf(c.stdout, "Sharing group %q deleted.\n", args[0])
							return err
						})
					}
				},
			},
			{
				name:  "rotate",
				usage: "group rotate NAME (--group-key-file FILE | --generate-key --key-out FILE)",
				short: "Give a sharing group a new key, keeping its members",
				long: `Every member must rotate to the same key: until all have, sightings between
those on the old key and those on the new one stop matching (digests under
different keys never match), and nothing sent under the old key is kept.
Compare KEY ID in "group list" with the other members' to see who has.`,
				minArgs: 1, maxArgs: 1,
				connects: true, printsOutput: true,
				setup: func(fs *flag.FlagSet) action {
					kf := registerKeyFlags(fs)
					return func(ctx context.Context, c *cli, args []string) error {
						pk, err := kf.key(c)
						if err != nil {
							return err
						}
						defer pk.abort()
						return withClient(ctx, c, irxv1.NewAlertServiceClient, func(ctx context.Context, cl irxv1.AlertServiceClient) error {
							list, err := cl.ListSharingGroups(ctx, &irxv1.ListSharingGroupsRequest{})
							if err != nil {
								return err
							}
							var old *irxv1.SharingGroup
							for _, g := range list.GetGroups() {
								if g.GetName() == args[0] {
									old = g
								}
							}
							if old == nil {
								return status.Errorf(codes.NotFound, "no sharing group %q; create it with irxctl group put", args[0])
							}
							// Members changed between the list and the put
							// are replaced by the ones read here, as with
							// any read-modify-write of a group.
							resp, err := cl.PutSharingGroup(ctx, &irxv1.PutSharingGroupRequest{Group: &irxv1.SharingGroup{
								Name: old.GetName(), MemberTeamIds: old.GetMemberTeamIds(), Key: pk.key,
							}})
							if err != nil {
								return err
							}
							if err := pk.commit(); err != nil {
								return err
							}
							if resp.GetGroup().GetKeyId() == old.GetKeyId() {
								fmt.Fprintf(c.stderr, "irxctl: the key is the one the group had (key id %s): nothing rotated\n", old.GetKeyId())
							}
							return c.printGroupWithKey(resp.GetGroup(), pk, *kf.show)
						})
					}
				},
			},
		},
	}
}

func (c *cli) printGroupWithKey(g *irxv1.SharingGroup, pk *pendingKey, show bool) error {
	return c.printProto(g, func(w io.Writer) error {
		if err := writeGroups(w, []*irxv1.SharingGroup{g}); err != nil {
			return err
		}
		if pk.dest != "" {
			fmt.Fprintf(w, "\nThe key is in %s: give it to every member, who runs\n  irxctl group put %s --members ... --group-key-file FILE   (or group rotate %s --group-key-file FILE)\n",
				abs(pk.dest), g.GetName(), g.GetName())
		}
		if show {
			fmt.Fprintf(w, "\nkey: %s\n", hex.EncodeToString(pk.key))
		}
		return nil
	})
}

func writeGroups(w io.Writer, gs []*irxv1.SharingGroup) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "GROUP\tMEMBERS\tKEY ID\tUPDATED")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.GetName(), strings.Join(g.GetMemberTeamIds(), ","), g.GetKeyId(), timeLabel(g.GetUpdateTime()))
	}
	return tw.Flush()
}

// writeWithdrawals lists the former members still to be told to drop our
// digests, if any.
func writeWithdrawals(w io.Writer, ws []*irxv1.SightingsWithdrawal) error {
	if len(ws) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nTo be told to drop our digests (left the group, or the group was deleted):")
	tw := newTable(w)
	fmt.Fprintln(tw, "GROUP\tPEER\tKEY ID\tSINCE")
	for _, x := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.GetGroup(), x.GetPeerTeamId(), x.GetKeyId(), timeLabel(x.GetCreateTime()))
	}
	return tw.Flush()
}
