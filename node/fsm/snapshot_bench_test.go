package fsm

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// variedIncident is a report of about 1 KiB whose values differ from one
// record to the next as real reports' do: random addresses, names and
// digests, and a free-text account drawn from a vocabulary of a few hundred
// words, so a snapshot compresses as a real store would rather than as one
// repeated padding sentence.
func variedIncident(r *rand.Rand) *irxv1.Incident {
	var words []string
	for range 140 {
		words = append(words, snapshotVocabulary[r.IntN(len(snapshotVocabulary))])
	}
	hex := func(n int) string {
		var b strings.Builder
		for range n {
			fmt.Fprintf(&b, "%02x", r.IntN(256))
		}
		return b.String()
	}
	addr := fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	inc := newIncident()
	inc.Descriptions[0].Text = strings.Join(words, " ")
	inc.AttackingHosts = []*irxv1.Host{{Addresses: []string{addr}, Asn: uint32(64496 + r.IntN(1000))}}
	inc.Indicators = []*irxv1.Indicator{
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: addr, Confidence: uint32(r.IntN(101))},
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_FILE_HASH, Value: hex(32)},
		{Kind: irxv1.IndicatorKind_INDICATOR_KIND_DOMAIN, Value: "c2-" + hex(5) + ".example"},
	}
	return inc
}

var snapshotVocabulary = strings.Fields(`the a an of to in on at by for from with without after before during
attacker victim server host mail relay web proxy firewall router switch workstation laptop account user
administrator credentials password phishing malware ransomware trojan botnet scanner exploit vulnerability
patch update CVE injection overflow deserialisation upload shell backdoor persistence lateral movement
exfiltration encryption ransom note payment wallet domain address port service ssh rdp smb http https dns
ntp smtp imap ldap kerberos vpn gateway appliance cluster database backup storage share file archive
observed reported detected blocked isolated contained restored reimaged rotated revoked notified escalated
analysed correlated confirmed suspected unconfirmed ongoing resolved closed reopened several many few one two
three hours days minutes since until logs traffic connections requests responses alerts events signatures
indicators hashes samples sandbox report ticket incident customer constituency partner team national sector
energy health finance transport water digital public administration university school hospital clinic
bank insurer operator provider registrar hosting cloud tenant subscription container image registry
pipeline repository commit token key certificate authority chain expired forged spoofed lookalike typosquat
outbound inbound internal external unusual repeated brute force guessing spraying stuffing abuse misuse`)

// BenchmarkSnapshotPersist writes a snapshot of a state of varied records
// of about 1 KiB each, and reports the stream's bytes per record against
// the uncompressed format of version 1.
func BenchmarkSnapshotPersist(b *testing.B) {
	const records = 5000
	h := newHarness(b)
	r := rand.New(rand.NewPCG(1, 2))
	for range records {
		h.create(variedIncident(r))
	}
	// Throughput is of the state's bytes, in the uncompressed form.
	plain := len(asVersion1(b, takeSnapshot(b, h.f).data))
	b.SetBytes(int64(plain))
	var size int
	for b.Loop() {
		size = len(takeSnapshot(b, h.f).data)
	}
	b.ReportMetric(float64(size)/records, "stream-B/record")
	b.ReportMetric(float64(plain)/records, "uncompressed-B/record")
}
