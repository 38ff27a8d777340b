package wire

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
)

// TestFieldNumbersMatchTheSchema: every number a hand-written reader uses
// is the number of the field it names, of the kind it reads it as.
func TestFieldNumbersMatchTheSchema(t *testing.T) {
	_ = irxv1.File_irx_v1_command_proto // the schema's files registered
	for _, c := range []struct {
		num   protowire.Number
		field protoreflect.FullName
	}{
		{CommandProposeTime, "irx.v1.Command.propose_time"},
		{CommandCreate, "irx.v1.Command.create_incident"},
		{CommandBatch, "irx.v1.Command.batch"},
		{CommandActor, "irx.v1.Command.actor"},
		{ActionTarget, "irx.v1.OperatorAction.target"},
		{ActionVersion, "irx.v1.OperatorAction.version"},
		{ActionTime, "irx.v1.OperatorAction.time"},
		{BatchCommands, "irx.v1.CommandBatch.commands"},
		{CreateIncident, "irx.v1.CreateIncidentCommand.incident"},
		{CreateRequestID, "irx.v1.CreateIncidentCommand.request_id"},
		{CreateFresh, "irx.v1.CreateIncidentCommand.fresh_request_id"},
		{CreateEvaluated, "irx.v1.CreateIncidentCommand.evaluated"},
		{CreateDigest, "irx.v1.CreateIncidentCommand.request_digest"},
		{IncidentID, "irx.v1.Incident.id"},
		{IncidentVersion, "irx.v1.Incident.version"},
		{IncidentStatus, "irx.v1.Incident.status"},
		{IncidentTLP, "irx.v1.Incident.tlp"},
		{IncidentTaxonomy, "irx.v1.Incident.taxonomy"},
		{IncidentPriority, "irx.v1.Incident.priority"},
		{IncidentReportTime, "irx.v1.Incident.report_time"},
		{IncidentGenerationTime, "irx.v1.Incident.generation_time"},
		{IncidentCreateTime, "irx.v1.Incident.create_time"},
		{IncidentIndicators, "irx.v1.Incident.indicators"},
		{IncidentProvenance, "irx.v1.Incident.provenance"},
		{IncidentWithdrawTime, "irx.v1.Incident.withdraw_time"},
		{IncidentWithdrawReason, "irx.v1.Incident.withdraw_reason"},
		{IncidentReportingSite, "irx.v1.Incident.reporting_site"},
		{ReportingSiteSector, "irx.v1.ReportingSite.sector"},
		{ReportingSiteCountry, "irx.v1.ReportingSite.country"},
		{TaxonomyClass, "irx.v1.Taxonomy.class"},
		{TaxonomyType, "irx.v1.Taxonomy.type"},
		{IndicatorValue, "irx.v1.Indicator.value"},
		{IncidentAttackingHosts, "irx.v1.Incident.attacking_hosts"},
		{HostHostname, "irx.v1.Host.hostname"},
		{HostAddresses, "irx.v1.Host.addresses"},
		{HostDomain, "irx.v1.Host.domain"},
		{ProvenanceOriginTeam, "irx.v1.Provenance.origin_team"},
		{ProvenancePath, "irx.v1.Provenance.path"},
		{ProvenanceReceivedFrom, "irx.v1.Provenance.received_from"},
		{TimestampSeconds, "google.protobuf.Timestamp.seconds"},
		{TimestampNanos, "google.protobuf.Timestamp.nanos"},
		{SubscribeResponseItems, "irx.v1.SubscribeResponse.items"},
		{SubscribeResponseCursor, "irx.v1.SubscribeResponse.cursor"},
		{SubscribeResponseHead, "irx.v1.SubscribeResponse.head"},
		{SubscribeResponseHeadTime, "irx.v1.SubscribeResponse.head_time"},
		{SubscribeResponsePolicyVersion, "irx.v1.SubscribeResponse.policy_version"},
		{FeedItemSequence, "irx.v1.FeedItem.sequence"},
		{FeedItemIncident, "irx.v1.FeedItem.incident"},
		{ReplacementIncident, "irx.v1.IncidentReplacement.incident"},
		{ApplyPeerFeedItems, "irx.v1.ApplyPeerFeedCommand.items"},
		{ApplyPeerFeedViewsChecked, "irx.v1.ApplyPeerFeedCommand.views_checked"},
		{CreateIncidentResponseIncident, "irx.v1.CreateIncidentResponse.incident"},
		{ProposeResponseIncident, "irx.v1.ProposeResponse.incident"},
	} {
		msg, field := c.field.Parent(), c.field.Name()
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(msg)
		if err != nil {
			t.Errorf("%s: %v", c.field, err)
			continue
		}
		fd := d.(protoreflect.MessageDescriptor).Fields().ByName(field)
		if fd == nil {
			t.Errorf("%s: no such field", c.field)
			continue
		}
		if fd.Number() != c.num {
			t.Errorf("%s is field %d; the reader uses %d", c.field, fd.Number(), c.num)
		}
	}
	_ = timestamppb.Timestamp{}
}

// TestSetEncoded: a field set from its encoding decodes as if it had been
// set, singular or repeated, and encodes to the same bytes.
func TestSetEncoded(t *testing.T) {
	inc := &irxv1.Incident{Id: "cert-a:1", Tlp: irxv1.Tlp_TLP_GREEN}
	encoded, err := proto.Marshal(inc)
	if err != nil {
		t.Fatal(err)
	}
	resp := &irxv1.CreateIncidentResponse{}
	SetEncoded(resp, CreateIncidentResponseIncident, encoded)
	data, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var got irxv1.CreateIncidentResponse
	if err := proto.Unmarshal(data, &got); err != nil || !proto.Equal(got.GetIncident(), inc) {
		t.Fatalf("decoded %v, %v; want %v", got.GetIncident(), err, inc)
	}
	want, _ := proto.Marshal(&irxv1.CreateIncidentResponse{Incident: inc})
	if string(data) != string(want) {
		t.Error("the encoding differs from the message's own")
	}
	items := [][]byte{}
	for seq := range uint64(3) {
		b, _ := proto.Marshal(&irxv1.FeedItem{Sequence: seq + 1})
		items = append(items, b)
	}
	cmd := &irxv1.ApplyPeerFeedCommand{PeerTeamId: "cert-b"}
	SetEncoded(cmd, ApplyPeerFeedItems, items...)
	data, _ = proto.Marshal(cmd)
	var back irxv1.ApplyPeerFeedCommand
	if err := proto.Unmarshal(data, &back); err != nil || len(back.GetItems()) != 3 || back.GetItems()[2].GetSequence() != 3 {
		t.Fatalf("repeated: %v, %v", back.GetItems(), err)
	}
}
