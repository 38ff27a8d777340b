// Package record holds the rules of the incident record that do not depend
// on storage: identifiers, validation and field-mask updates.
package record

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/irxfed/irx/errdefs"
)

// MaxTeamIDLength bounds team ids: they are DNS labels or names.
const MaxTeamIDLength = 63

// ErrInvalidID is wrapped by every id parsing error.
var ErrInvalidID = errdefs.New(errdefs.ErrInvalidArgument, "invalid id")

// ID is a parsed incident id "<team-id>:<ticket>".
type ID struct {
	Team   string
	Ticket uint64
}

func (id ID) String() string { return id.Team + ":" + strconv.FormatUint(id.Ticket, 10) }

// ParseID parses "<team-id>:<ticket>". The ticket is a positive decimal
// without leading zeros, so every incident has exactly one spelling of its id.
func ParseID(s string) (ID, error) {
	team, ticket, ok := strings.Cut(s, ":")
	if !ok {
		return ID{}, fmt.Errorf("%w %q: want <team-id>:<ticket>", ErrInvalidID, s)
	}
	if err := ValidateTeamID(team); err != nil {
		return ID{}, fmt.Errorf("%w %q: %w", ErrInvalidID, s, err)
	}
	if ticket == "" || ticket[0] == '0' {
		return ID{}, fmt.Errorf("%w %q: ticket must be a positive number without leading zeros", ErrInvalidID, s)
	}
	n, err := strconv.ParseUint(ticket, 10, 64)
	if err != nil {
		return ID{}, fmt.Errorf("%w %q: ticket must be a positive number", ErrInvalidID, s)
	}
	return ID{Team: team, Ticket: n}, nil
}

// ValidateTeamID checks a team (or node) id: lowercase letters, digits, '.'
// and '-', starting and ending with a letter or digit, at most 63 bytes.
// The same rule as DNS names, so a team can use its domain.
func ValidateTeamID(s string) error {
	if s == "" {
		return errors.New("team id is empty")
	}
	if len(s) > MaxTeamIDLength {
		return fmt.Errorf("team id is longer than %d bytes", MaxTeamIDLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if alnum || (c == '.' || c == '-') && i > 0 && i < len(s)-1 {
			continue
		}
		return fmt.Errorf("team id %q: only a-z, 0-9, '.' and '-' (not first or last) are allowed", s)
	}
	return nil
}
