// Package wire holds what irx reads and writes of protobuf encodings by
// hand, on paths where decoding a whole message, or encoding one twice,
// cost a measurable part of a node's work: the field numbers those readers
// use, and the one way of putting an encoded message into another without
// decoding it. wire_test.go checks every number against the schema's
// descriptors, so a renumbered field fails the build's tests instead of
// misreading data. It also holds the size the encoded command of one Raft
// log entry keeps under, which the node's group commit and the puller of a
// peer's feed both respect.
package wire

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxEntryBytes bounds the encoded command of one Raft log entry where irx
// chooses its size (a group commit's batch, a command of a peer's feed).
// hashicorp/raft's network transport decodes a log's data with go-msgpack,
// which reads a byte string longer than 256 KiB in 256 KiB steps and copies
// everything read so far at each step: an entry of n steps costs every
// follower n²/2 steps of copying (a 4 MiB entry, 30 MiB). Up to the first
// step it reads the data once, into one allocation. A command larger than this on its own (one
// large record) still goes, alone.
const MaxEntryBytes = 256 << 10

// Field numbers read or written by hand, named <Message><Field>.
const (
	// irx.v1.Command, CommandBatch and CreateIncidentCommand: the state
	// machine's reader of log entries.
	CommandProposeTime protowire.Number = 1
	CommandCreate      protowire.Number = 2
	CommandBatch       protowire.Number = 6
	CommandApplyFeed   protowire.Number = 10
	CommandActor       protowire.Number = 14
	BatchCommands      protowire.Number = 1
	CreateIncident     protowire.Number = 1
	CreateRequestID    protowire.Number = 2
	CreateFresh        protowire.Number = 3
	CreateEvaluated    protowire.Number = 4
	CreateDigest       protowire.Number = 5

	// irx.v1.OperatorAction: the state machine appends an action's target,
	// version and time (a Timestamp, above) to the encoded actor the
	// proposer made.
	ActionTarget  protowire.Number = 4
	ActionVersion protowire.Number = 5
	ActionTime    protowire.Number = 6

	// irx.v1.Incident and the messages in it: the replicas' reader of an
	// evaluated create's indexed fields, and the stored encoding's id.
	IncidentID             protowire.Number = 1
	IncidentVersion        protowire.Number = 2
	IncidentStatus         protowire.Number = 5
	IncidentTLP            protowire.Number = 7
	IncidentTaxonomy       protowire.Number = 9
	IncidentPriority       protowire.Number = 11
	IncidentReportTime     protowire.Number = 16
	IncidentGenerationTime protowire.Number = 17
	IncidentCreateTime     protowire.Number = 18
	IncidentIndicators     protowire.Number = 24
	IncidentProvenance     protowire.Number = 36
	IncidentWithdrawTime   protowire.Number = 37
	IncidentWithdrawReason protowire.Number = 38
	IncidentReportingSite  protowire.Number = 20
	ReportingSiteSector    protowire.Number = 5
	ReportingSiteCountry   protowire.Number = 6
	TaxonomyClass          protowire.Number = 1
	TaxonomyType           protowire.Number = 2
	IndicatorValue         protowire.Number = 2
	IncidentAttackingHosts protowire.Number = 23
	HostHostname           protowire.Number = 1
	HostAddresses          protowire.Number = 2
	HostDomain             protowire.Number = 4
	ProvenanceOriginTeam   protowire.Number = 1
	ProvenancePath         protowire.Number = 2
	ProvenanceReceivedFrom protowire.Number = 3
	ProvenanceReceiveTime  protowire.Number = 4
	TimestampSeconds       protowire.Number = 1
	TimestampNanos         protowire.Number = 2

	// irx.v1.SubscribeResponse, FeedItem, IncidentReplacement and
	// ApplyPeerFeedCommand: the puller, which passes a peer's items into
	// its log entries undecoded, and the feed's server, which sends a view
	// as it encoded it for its digest.
	SubscribeResponseItems                protowire.Number = 1
	SubscribeResponseCursor               protowire.Number = 2
	SubscribeResponseHead                 protowire.Number = 3
	SubscribeResponseHeadTime             protowire.Number = 4
	SubscribeResponsePolicyVersion        protowire.Number = 5
	SubscribeResponseGeneration           protowire.Number = 400
	SubscribeResponseRestoredFeedSequence protowire.Number = 401
	FeedItemSequence                      protowire.Number = 1
	FeedItemIncident                      protowire.Number = 3
	ReplacementIncident                   protowire.Number = 3
	ApplyPeerFeedItems                    protowire.Number = 5
	ApplyPeerFeedViewsChecked             protowire.Number = 9

	// The answers that carry a record just stored as it was stored.
	CreateIncidentResponseIncident protowire.Number = 1
	ProposeResponseIncident        protowire.Number = 1
)

// SetEncoded makes values, each an encoded message, the message field num
// of m as they are (one value for a singular field, any number for a
// repeated one). They travel as m's unknown fields, which the encoder
// writes out verbatim, so whoever decodes m sees the field as if it had
// been set: a value is not encoded a second time. m's other unknown
// fields are replaced.
func SetEncoded(m proto.Message, num protowire.Number, values ...[]byte) {
	size := 0
	for _, v := range values {
		size += protowire.SizeTag(num) + protowire.SizeBytes(len(v))
	}
	raw := make([]byte, 0, size)
	for _, v := range values {
		raw = protowire.AppendTag(raw, num, protowire.BytesType)
		raw = protowire.AppendBytes(raw, v)
	}
	m.ProtoReflect().SetUnknown(raw)
}

// BytesValue reads the value of a length-delimited field whose tag has
// been read from b; false when the field is of another wire type or cut
// short.
func BytesValue(typ protowire.Type, b []byte) (v, rest []byte, ok bool) {
	if typ != protowire.BytesType {
		return nil, nil, false
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, nil, false
	}
	return v, b[n:], true
}

// VarintValue reads the value of a varint field whose tag has been read
// from b; false when the field is of another wire type or cut short.
func VarintValue(typ protowire.Type, b []byte) (v uint64, rest []byte, ok bool) {
	if typ != protowire.VarintType {
		return 0, nil, false
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, nil, false
	}
	return v, b[n:], true
}

// NextBytesField reads one length-delimited field from b: its number, its
// value and what follows.
func NextBytesField(b []byte) (protowire.Number, []byte, []byte, bool) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, nil, nil, false
	}
	v, rest, ok := BytesValue(typ, b[n:])
	return num, v, rest, ok
}
