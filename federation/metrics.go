package federation

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// metrics are federation's Prometheus series: per-peer positions read from
// the replicated state at scrape time, and what the feed gave each peer,
// counted as it is served.
type metrics struct {
	f       *Federation
	records *prometheus.CounterVec
	fields  *prometheus.CounterVec
	descs   map[string]*prometheus.Desc
	// Limits (limits.go): streams refused, handshakes refused, and what
	// the streams open here hold, read at scrape time.
	streamsRefused    *prometheus.CounterVec
	handshakesRefused *prometheus.CounterVec
	streamsOpen       *prometheus.Desc
	streamBytes       *prometheus.Desc
	budgetUsed        *prometheus.Desc
	budgetLimit       *prometheus.Desc
	// The receiving side: responses the pullers refused, and what each
	// holds of its peer's responses.
	pullsRefused *prometheus.CounterVec
	pullHeld     *prometheus.Desc
	pullLimit    *prometheus.Desc
}

func newMetrics(f *Federation) *metrics {
	m := &metrics{
		f: f,
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_feed_records_served_total",
			Help: "Feed items served to peers by this node, by peer and outcome (disclosed, replaced, erased, withdrawn; withheld counts entries whose version the policy withheld).",
		}, []string{"peer", "outcome"}),
		fields: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_disclosed_fields_total",
			Help: "Fields of the views served to peers by this node, by peer, information class and the action applied.",
		}, []string{"peer", "class", "action"}),
		descs: map[string]*prometheus.Desc{},
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_federation_streams_refused_total",
			Help: "Subscribe streams this node refused with RESOURCE_EXHAUSTED, by peer and reason (peer_limit: the peer had streams_per_peer open; memory: the live heap was near memory_limit).",
		}, []string{"peer", "reason"}),
		handshakesRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_federation_handshakes_refused_total",
			Help: "TLS handshakes the peer-facing listener refused, by reason (deleted: no such peer, disabled, certificate_revoked, ca_changed, expired, not_node, unknown).",
		}, []string{"reason"}),
		pullsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irx_federation_feed_responses_refused_total",
			Help: "Feed responses this node's puller refused from the peer it follows, by peer and reason (oversize: larger than the largest response a peer sends; malformed: not a SubscribeResponse).",
		}, []string{"peer", "reason"}),
		pullHeld:    prometheus.NewDesc("irx_federation_pull_held_bytes", "Bytes the puller holds of the peer's feed responses: read ahead and not yet applied (the leader only).", []string{"peer"}, nil),
		pullLimit:   prometheus.NewDesc("irx_federation_pull_limit_bytes", "The most the puller may hold of the peer's feed responses: its share of an eighth of memory_limit (the leader only).", []string{"peer"}, nil),
		streamsOpen: prometheus.NewDesc("irx_federation_streams_open", "Subscribe streams the peer has open on this node.", []string{"peer"}, nil),
		streamBytes: prometheus.NewDesc("irx_federation_stream_queued_bytes", "Encoded bytes the peer's Subscribe streams hold on this node: computed and not yet handed to gRPC, and the last message gRPC holds per stream.", []string{"peer"}, nil),
		budgetUsed:  prometheus.NewDesc("irx_federation_send_budget_used_bytes", "Bytes all Subscribe streams of this node hold of their shared budget.", nil, nil),
		budgetLimit: prometheus.NewDesc("irx_federation_send_budget_bytes", "The budget all Subscribe streams of this node share: an eighth of memory_limit.", nil, nil),
	}
	for name, help := range map[string]string{
		"irx_peer_inbound_lag_records":         "Entries of the peer's feed we have not applied.",
		"irx_peer_outbound_lag_records":        "Entries of our feed the peer has not acknowledged.",
		"irx_peer_received_total":              "Incident versions applied from the peer.",
		"irx_peer_sent_total":                  "Views the peer acknowledged.",
		"irx_peer_withheld_total":              "Feed entries withheld from the peer by its policy.",
		"irx_peer_received_replacements_total": "Replacements of versions we hold, applied from the peer.",
		"irx_peer_sent_replacements_total":     "Replacements and erasures of versions the peer held, acknowledged by it.",
		"irx_peer_rejected_total":              "Items of the peer's feed we refused.",
		"irx_peer_redisclosure_pending":        "1 while what the peer holds is being disclosed again after a change of our policy for it.",
		"irx_peer_connected":                   "1 while this node (the leader) follows the peer's feed.",
	} {
		m.descs[name] = prometheus.NewDesc(name, help, []string{"peer"}, nil)
	}
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.records.Describe(ch)
	m.fields.Describe(ch)
	m.streamsRefused.Describe(ch)
	m.handshakesRefused.Describe(ch)
	m.pullsRefused.Describe(ch)
	ch <- m.pullHeld
	ch <- m.pullLimit
	ch <- m.streamsOpen
	ch <- m.streamBytes
	ch <- m.budgetUsed
	ch <- m.budgetLimit
	for _, d := range m.descs {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.records.Collect(ch)
	m.fields.Collect(ch)
	m.collectLimits(ch)
	token := ""
	for {
		peers, next, err := m.f.state.Peers(500, token)
		if err != nil {
			return
		}
		for _, p := range peers {
			d, err := m.f.describe(p)
			if err != nil {
				continue
			}
			st, team := d.GetStatus(), p.GetTeamId()
			put := func(name string, kind prometheus.ValueType, v float64) {
				ch <- prometheus.MustNewConstMetric(m.descs[name], kind, v, team)
			}
			put("irx_peer_inbound_lag_records", prometheus.GaugeValue, float64(st.GetInboundLagRecords()))
			put("irx_peer_outbound_lag_records", prometheus.GaugeValue, float64(st.GetOutboundLagRecords()))
			put("irx_peer_received_total", prometheus.CounterValue, float64(st.GetReceived()))
			put("irx_peer_sent_total", prometheus.CounterValue, float64(st.GetSent()))
			put("irx_peer_withheld_total", prometheus.CounterValue, float64(st.GetWithheld()))
			put("irx_peer_received_replacements_total", prometheus.CounterValue, float64(st.GetReceivedReplacements()))
			put("irx_peer_sent_replacements_total", prometheus.CounterValue, float64(st.GetSentReplacements()))
			put("irx_peer_rejected_total", prometheus.CounterValue, float64(st.GetRejected()))
			pending := 0.0
			if st.GetRedisclosurePolicyVersion() != 0 {
				pending = 1
			}
			put("irx_peer_redisclosure_pending", prometheus.GaugeValue, pending)
			connected := 0.0
			if st.GetConnected() {
				connected = 1
			}
			put("irx_peer_connected", prometheus.GaugeValue, connected)
		}
		if token = next; token == "" {
			return
		}
	}
}

// tally counts what a batch of feed entries gave a peer; it is added to
// the counters once per batch, because label lookups per field of every
// record showed in the serving side's profile during a catch-up.
type tally struct {
	outcomes map[string]int
	fields   map[fieldAction]int
}

type fieldAction struct {
	class  irxv1.InfoClass
	action irxv1.DisclosureAction
}

func newTally() *tally {
	return &tally{outcomes: map[string]int{}, fields: map[fieldAction]int{}}
}

// add counts what one feed entry gave the peer.
func (t *tally) add(outs []outcome, withheld bool) {
	if withheld {
		t.outcomes["withheld"]++
	}
	// A withheld version may still withdraw what the peer holds.
	for _, o := range outs {
		switch r := o.item.GetReplacement(); {
		case o.item.GetWithdrawal() != nil:
			t.outcomes["withdrawn"]++
		case r != nil && o.ledger.GetErased():
			t.outcomes["erased"]++
		case r != nil:
			t.outcomes["replaced"]++
		case o.item.GetStatistics() != nil:
			t.outcomes["statistics"]++
		default:
			t.outcomes["disclosed"]++
		}
		for _, d := range o.ex.GetFields() {
			t.fields[fieldAction{d.GetInfoClass(), d.GetAction()}] += len(d.GetPaths())
		}
	}
}

// served adds a batch's tally to the counters and empties it.
func (m *metrics) served(peer string, t *tally) {
	for outcome, n := range t.outcomes {
		m.records.WithLabelValues(peer, outcome).Add(float64(n))
	}
	for k, n := range t.fields {
		class := strings.ToLower(strings.TrimPrefix(k.class.String(), "INFO_CLASS_"))
		action := strings.ToLower(strings.TrimPrefix(k.action.String(), "DISCLOSURE_ACTION_"))
		m.fields.WithLabelValues(peer, class, action).Add(float64(n))
	}
	clear(t.outcomes)
	clear(t.fields)
}

// collectLimits reports the streams open here and what they hold.
func (m *metrics) collectLimits(ch chan<- prometheus.Metric) {
	m.streamsRefused.Collect(ch)
	m.handshakesRefused.Collect(ch)
	m.pullsRefused.Collect(ch)
	p := m.f.pullers
	p.mu.Lock()
	for peer, l := range p.live {
		if l.recv != nil {
			now, _ := l.recv.held()
			ch <- prometheus.MustNewConstMetric(m.pullHeld, prometheus.GaugeValue, float64(now), peer)
			ch <- prometheus.MustNewConstMetric(m.pullLimit, prometheus.GaugeValue, float64(l.recv.limit), peer)
		}
	}
	p.mu.Unlock()
	fl := m.f.followers
	fl.mu.Lock()
	for peer, n := range fl.open {
		ch <- prometheus.MustNewConstMetric(m.streamsOpen, prometheus.GaugeValue, float64(n), peer)
	}
	for peer, n := range fl.bytes {
		ch <- prometheus.MustNewConstMetric(m.streamBytes, prometheus.GaugeValue, float64(n), peer)
	}
	fl.mu.Unlock()
	b := m.f.limits.budget
	ch <- prometheus.MustNewConstMetric(m.budgetUsed, prometheus.GaugeValue, float64(b.inUse()))
	ch <- prometheus.MustNewConstMetric(m.budgetLimit, prometheus.GaugeValue, float64(b.limit))
}

// refused counts a Subscribe stream refused over a limit.
func (m *metrics) refused(peer, reason string) {
	m.streamsRefused.WithLabelValues(peer, reason).Inc()
}

// pullRefused counts a feed response the puller refused.
func (m *metrics) pullRefused(peer, reason string) {
	m.pullsRefused.WithLabelValues(peer, reason).Inc()
}

// handshakeRefused counts a refused handshake by the reason of err. The
// identity a refused client claims is not a label: anyone can claim any.
func (m *metrics) handshakeRefused(err error) {
	m.handshakesRefused.WithLabelValues(reasonOf(err)).Inc()
}
