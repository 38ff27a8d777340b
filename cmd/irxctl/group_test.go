package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/irxfed/irx/test/irxdtest"
)

// keyIDOf is the key id the proto documents: the first 8 bytes of SHA-256
// of the key, in hex.
func keyIDOf(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// readKeyFile reads a key irxctl wrote and checks it is private.
func readKeyFile(t *testing.T, path string) []byte {
	t.Helper()
	wantMode(t, path, 0o600)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		t.Fatalf("%s: not 32 bytes in hex: %v", path, err)
	}
	return key
}

// groupRow returns the table row of a group: GROUP MEMBERS KEY-ID UPDATED.
func groupRow(t *testing.T, out, name string) []string {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "GROUP ") {
		t.Fatalf("no group table in:\n%s", out)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == name {
			return f
		}
	}
	t.Fatalf("no row for %s in:\n%s", name, out)
	return nil
}

// noKeyIn fails if the key appears in any encoding the CLI could print.
func noKeyIn(t *testing.T, r result, key []byte) {
	t.Helper()
	for _, enc := range []string{hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key), base64.RawStdEncoding.EncodeToString(key)} {
		if strings.Contains(r.stdout, enc) || strings.Contains(r.stderr, enc) {
			t.Errorf("the key is in the output:\n%v", r)
		}
	}
}

func TestGroupCommands(t *testing.T) {
	n := irxdtest.StartNode(t, irxdtest.Binary(t))
	ctl := cliAt(t, n.APIAddr)
	dir := t.TempDir()
	for _, team := range []string{"cert-b", "cert-c"} {
		caDir, _ := peerTeam(t, team)
		mustSucceed(t, ctl("", "peer", "create", "--team", team, "--peer-ca-file", filepath.Join(caDir, "ca.crt")))
	}

	r := mustSucceed(t, ctl("", "group", "list", "-o", "json"))
	if !strings.Contains(r.stdout, `"groups": []`) {
		t.Errorf("empty group list -o json: %q", r.stdout)
	}

	// A generated key goes to a private file and nowhere else.
	keyFile := filepath.Join(dir, "c2-watch.key")
	r = mustSucceed(t, ctl("", "group", "put", "c2-watch", "--members", "cert-b,cert-c", "--generate-key", "--key-out", keyFile))
	key := readKeyFile(t, keyFile)
	noKeyIn(t, r, key)
	if row := groupRow(t, r.stdout, "c2-watch"); row[1] != "cert-b,cert-c" || row[2] != keyIDOf(key) {
		t.Errorf("group put: want members cert-b,cert-c and key id %s:\n%s", keyIDOf(key), r.stdout)
	}
	if !strings.Contains(r.stdout, keyFile) {
		t.Errorf("group put does not say where the key is:\n%s", r.stdout)
	}
	for _, format := range []string{"", "json", "yaml"} {
		args := []string{"group", "list"}
		if format != "" {
			args = append(args, "-o", format)
		}
		r = mustSucceed(t, ctl("", args...))
		noKeyIn(t, r, key)
		if !strings.Contains(r.stdout, keyIDOf(key)) || !strings.Contains(r.stdout, "cert-c") {
			t.Errorf("group list %s:\n%s", format, r.stdout)
		}
	}

	// The same key from the file, as another member gives it, also as
	// base64 on stdin: the same key id; other members replace the old.
	r = mustSucceed(t, ctl("", "group", "put", "c2-watch", "--members", "cert-b", "--group-key-file", keyFile))
	if row := groupRow(t, r.stdout, "c2-watch"); row[1] != "cert-b" || row[2] != keyIDOf(key) {
		t.Errorf("group put --group-key-file:\n%s", r.stdout)
	}
	r = mustSucceed(t, ctl(base64.StdEncoding.EncodeToString(key)+"\n", "group", "put", "c2-watch", "--members", "cert-b,cert-c", "--group-key-file", "-"))
	if row := groupRow(t, r.stdout, "c2-watch"); row[1] != "cert-b,cert-c" || row[2] != keyIDOf(key) {
		t.Errorf("group put --group-key-file - (base64):\n%s", r.stdout)
	}

	// Rotation keeps the members and changes the key id.
	newFile := filepath.Join(dir, "c2-watch-2.key")
	r = mustSucceed(t, ctl("", "group", "rotate", "c2-watch", "--generate-key", "--key-out", newFile))
	newKey := readKeyFile(t, newFile)
	noKeyIn(t, r, newKey)
	noKeyIn(t, r, key)
	if row := groupRow(t, r.stdout, "c2-watch"); row[1] != "cert-b,cert-c" || row[2] != keyIDOf(newKey) || row[2] == keyIDOf(key) {
		t.Errorf("group rotate: want members cert-b,cert-c and key id %s:\n%s", keyIDOf(newKey), r.stdout)
	}
	// Rotating to the key it has says so.
	r = mustSucceed(t, ctl("", "group", "rotate", "c2-watch", "--group-key-file", newFile))
	if !strings.Contains(r.stderr, "nothing rotated") {
		t.Errorf("rotate to the same key: %v", r)
	}
	// The key is printed when asked, and only then.
	r = mustSucceed(t, ctl("", "group", "rotate", "c2-watch", "--generate-key", "--show-key"))
	_, shown, ok := strings.Cut(r.stdout, "\nkey: ")
	shownKey, err := hex.DecodeString(strings.TrimSpace(shown))
	if !ok || err != nil || len(shownKey) != 32 || groupRow(t, r.stdout, "c2-watch")[2] != keyIDOf(shownKey) {
		t.Errorf("rotate --show-key: the key shown is not the group's:\n%s", r.stdout)
	}

	// A key file of the 32 bytes themselves.
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(200 + i)
	}
	rawFile := writeFile(t, filepath.Join(dir, "raw.key"), string(raw))
	r = mustSucceed(t, ctl("", "group", "put", "c2-raw", "--members", "cert-b", "--group-key-file", rawFile))
	if groupRow(t, r.stdout, "c2-raw")[2] != keyIDOf(raw) {
		t.Errorf("a raw 32-byte key file:\n%s", r.stdout)
	}

	// Mistakes change nothing.
	before := mustSucceed(t, ctl("", "group", "list")).stdout
	mustFail(t, ctl("", "group", "put", "c2-watch", "--members", "cert-b"), 2, "a key is required")
	mustFail(t, ctl("", "group", "put", "c2-watch", "--members", "cert-b", "--generate-key"), 2, "--key-out")
	mustFail(t, ctl("", "group", "put", "c2-watch", "--generate-key", "--key-out", filepath.Join(dir, "x.key")), 2, "--members is required")
	mustFail(t, ctl("", "group", "rotate", "c2-watch", "--generate-key", "--show-key", "-o", "json"), 2, "--show-key")
	secret := "not-a-key-but-secret-text"
	bad := writeFile(t, filepath.Join(dir, "bad.key"), secret)
	if r := mustFail(t, ctl("", "group", "put", "c2-watch", "--members", "cert-b", "--group-key-file", bad), 2, "--group-key-file"); strings.Contains(r.stderr, secret) {
		t.Errorf("the error quotes the key file: %s", r.stderr)
	}
	// 32 characters of text are not taken for 32 raw bytes: here a 16-byte
	// key in hex, which another tool would read as 16 bytes.
	short := writeFile(t, filepath.Join(dir, "short.key"), strings.Repeat("ab", 16))
	mustFail(t, ctl("", "group", "put", "c2-watch", "--members", "cert-b", "--group-key-file", short), 2, "--group-key-file")
	mustFail(t, ctl("", "group", "rotate", "c2-watch", "--generate-key", "--key-out", keyFile), 2, "--force")
	if got := readKeyFile(t, keyFile); !bytes.Equal(got, key) {
		t.Errorf("--key-out without --force replaced %s", keyFile)
	}
	// A member that is not a peer: refused by the node, naming the field,
	// and the generated key's file is not left behind.
	orphan := filepath.Join(dir, "orphan.key")
	mustFail(t, ctl("", "group", "put", "c2-watch", "--members", "cert-z", "--generate-key", "--key-out", orphan), 1,
		"InvalidArgument", "group.member_team_ids")
	if entries, _ := filepath.Glob(filepath.Join(dir, "*orphan*")); len(entries) != 0 {
		t.Errorf("a refused put left %v", entries)
	}
	mustFail(t, ctl("", "group", "put", "Bad_Name", "--members", "cert-b", "--group-key-file", keyFile), 1, "InvalidArgument", "group.name")
	mustFail(t, ctl("", "group", "rotate", "no-such-group", "--group-key-file", keyFile), 1, "NotFound", "no-such-group")
	mustFail(t, ctl("", "group", "delete", "no-such-group"), 1, "NotFound", "no-such-group")
	mustFail(t, ctl("", "group", "delete", "Bad_Name"), 1, "InvalidArgument", "name")
	if after := mustSucceed(t, ctl("", "group", "list")).stdout; after != before {
		t.Errorf("refused commands changed the groups:\n%s\nthen:\n%s", before, after)
	}

	// A deleted group's member is owed a withdrawal, listed until it is
	// delivered (these peers have no endpoint: it stays owed).
	r = mustSucceed(t, ctl("", "group", "delete", "c2-raw"))
	if !strings.Contains(r.stdout, `"c2-raw" deleted`) {
		t.Errorf("group delete: %v", r)
	}
	r = mustSucceed(t, ctl("", "group", "list"))
	groups, owed, ok := strings.Cut(r.stdout, "To be told to drop our digests")
	if !ok || strings.Contains(groups, "c2-raw") || !regexp.MustCompile(`(?m)^c2-raw\s+cert-b\s+`+keyIDOf(raw)).MatchString(owed) {
		t.Errorf("group list after deleting c2-raw:\n%s", r.stdout)
	}
}
