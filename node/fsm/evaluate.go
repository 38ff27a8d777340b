package fsm

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/internal/wire"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// A create is evaluated once, by the leader, instead of by every replica:
// CompleteCreate makes version 1 of the incident as it will be stored, but
// for its id, which depends on the ticket and so on the log order, and
// encodes it. Every replica stores those bytes with the id in front. The
// id is the incident's field 1, and a deterministic encoding writes fields
// in number order, so the two together are exactly the encoding of the
// complete record: a replica that decodes and completes the incident
// itself (one that predates evaluated creates) stores the same bytes.

// CompleteCreate returns proposed as version 1 of an incident of team,
// recorded at now, without its id: output-only fields dropped, IODEF's
// defaults filled in, validated, stamped. It works on a shallow copy, so
// proposed is left as it is and may be shared; the copy shares proposed's
// nested messages and must be treated as read-only too. The second result
// is the copy's deterministic encoding.
func CompleteCreate(team string, proposed *irxv1.Incident, now *timestamppb.Timestamp) (*irxv1.Incident, []byte, error) {
	inc := withoutOutputOnly(proposed)
	record.ApplyDefaults(inc, now)
	if err := record.Validate(inc, "incident"); err != nil {
		return nil, nil, err
	}
	inc.Version = 1
	inc.CreateTime = now
	inc.GenerationTime = now
	inc.Provenance = &irxv1.Provenance{OriginTeam: team}
	data, err := marshal.Marshal(inc)
	if err != nil {
		return nil, nil, fmt.Errorf("encode incident: %w", err)
	}
	return inc, data, nil
}

// withoutOutputOnly is a shallow copy of inc without the fields a client
// may not set (id, version, generation_time, create_time, provenance). The
// fields are copied one by one: copying them by reflection was a large part
// of the leader's group commit. TestWithoutOutputOnlyCopiesEveryField fails when the
// schema gains a field that is not copied here.
func withoutOutputOnly(inc *irxv1.Incident) *irxv1.Incident {
	if inc == nil {
		return &irxv1.Incident{}
	}
	out := &irxv1.Incident{
		AlternativeIds:       inc.AlternativeIds,
		Purpose:              inc.Purpose,
		Status:               inc.Status,
		Restriction:          inc.Restriction,
		Tlp:                  inc.Tlp,
		NamedRecipients:      inc.NamedRecipients,
		Taxonomy:             inc.Taxonomy,
		AdditionalTaxonomies: inc.AdditionalTaxonomies,
		Priority:             inc.Priority,
		DetectTime:           inc.DetectTime,
		StartTime:            inc.StartTime,
		EndTime:              inc.EndTime,
		RecoveryTime:         inc.RecoveryTime,
		ReportTime:           inc.ReportTime,
		Descriptions:         inc.Descriptions,
		ReportingSite:        inc.ReportingSite,
		Contacts:             inc.Contacts,
		VictimHosts:          inc.VictimHosts,
		AttackingHosts:       inc.AttackingHosts,
		Indicators:           inc.Indicators,
		Methods:              inc.Methods,
		Assessments:          inc.Assessments,
		Discoveries:          inc.Discoveries,
		Compromise:           inc.Compromise,
		SiteSecurity:         inc.SiteSecurity,
		LogExcerpts:          inc.LogExcerpts,
		Evidence:             inc.Evidence,
		History:              inc.History,
		RelatedActivity:      inc.RelatedActivity,
		AssistanceRequested:  inc.AssistanceRequested,
		DisclosureConsent:    inc.DisclosureConsent,
		WithdrawTime:         inc.WithdrawTime,
		WithdrawReason:       inc.WithdrawReason,
		// What an IODEF import keeps.
		SenderGenerationTime:     inc.SenderGenerationTime,
		Expectations:             inc.Expectations,
		IodefExtrasPrivateUser:   inc.IodefExtrasPrivateUser,
		IodefExtrasIntruder:      inc.IodefExtrasIntruder,
		IodefExtrasPrivateSite:   inc.IodefExtrasPrivateSite,
		IodefExtrasVulnerability: inc.IodefExtrasVulnerability,
		IodefExtrasEmbarrassing:  inc.IodefExtrasEmbarrassing,
		IodefExtrasStatistical:   inc.IodefExtrasStatistical,
		IodefExtrasContact:       inc.IodefExtrasContact,
	}
	if unknown := inc.ProtoReflect().GetUnknown(); len(unknown) > 0 {
		out.ProtoReflect().SetUnknown(unknown)
	}
	return out
}

// withID is the stored encoding of an incident: its id field, then the
// rest of its encoding.
func withID(id string, rest []byte) []byte {
	b := make([]byte, 0, protowire.SizeTag(wire.IncidentID)+protowire.SizeBytes(len(id))+len(rest))
	b = protowire.AppendTag(b, wire.IncidentID, protowire.BytesType)
	b = protowire.AppendString(b, id)
	return append(b, rest...)
}
