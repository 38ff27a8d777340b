package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// MaxPolicyYAMLBytes bounds a policy file. A real one is a screenful.
const MaxPolicyYAMLBytes = 64 << 10

// ParseYAML reads a disclosure policy written in YAML (see
// testdata/sample.yaml) and validates it. The keys are the proto field names
// of DisclosurePolicy; rules is a mapping from class to action:
//
//	peer_team_id: cert-b
//	recipient_class: response_team
//	tlp_ceiling: amber
//	rules:
//	  intruder: forward
//	  private_site:
//	    action: generalise
//	    ipv4_prefix_length: 24
//
// Enum values are written in lower case without their prefix
// ("law_enforcement", "amber+strict", "private_site", "pseudonymise"); the
// full proto names ("TLP_AMBER_STRICT") are accepted too. Unknown keys,
// output-only keys (version, create_time), unknown classes and actions,
// invalid prefixes and CIDRs, unknown taxonomy entries and impossible
// combinations are refused with a *record.ValidationError whose violations name the line,
// column and key.
func ParseYAML(data []byte) (*irxv1.DisclosurePolicy, error) {
	if len(data) > MaxPolicyYAMLBytes {
		return nil, policyError([]record.Violation{{Field: "policy", Description: fmt.Sprintf("is %d bytes; the limit is %d", len(data), MaxPolicyYAMLBytes)}})
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, policyError([]record.Violation{{Field: "policy", Line: 1, Column: 1, Description: "is empty"}})
		}
		return nil, policyError([]record.Violation{yamlSyntaxError(err)})
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		fe := record.Violation{Field: "policy", Line: extra.Line, Column: extra.Column, Description: "holds more than one YAML document; write one policy per file"}
		if err != nil {
			fe = yamlSyntaxError(err)
		}
		return nil, policyError([]record.Violation{fe})
	}
	d := &yamlDecoder{p: &irxv1.DisclosurePolicy{}, pos: map[string]yamlPos{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.top(root)
	if len(d.errs) > 0 {
		return nil, policyError(d.errs)
	}
	if err := Validate(d.p); err != nil {
		var pe *record.ValidationError
		if !errors.As(err, &pe) {
			return nil, err
		}
		out := policyError(nil)
		for _, fe := range pe.Violations {
			out.Violations = append(out.Violations, d.locate(fe, root))
		}
		return nil, out
	}
	return d.p, nil
}

// yamlSyntaxError turns the parser's "yaml: line 3: ..." into a located
// violation.
func yamlSyntaxError(err error) record.Violation {
	msg := err.Error()
	fe := record.Violation{Field: "policy", Description: "is not valid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				fe.Line, fe.Column, fe.Description = line, 1, "is not valid YAML: "+text
			}
		}
	}
	return fe
}

type yamlPos struct {
	line, column int
	key          string // the YAML key path
}

type yamlDecoder struct {
	p    *irxv1.DisclosurePolicy
	pos  map[string]yamlPos // proto field path -> where it was written
	errs []record.Violation
}

func (d *yamlDecoder) fail(n *yaml.Node, key, format string, args ...any) {
	if key == "" {
		key = "policy"
	}
	d.errs = append(d.errs, record.Violation{Field: key, Line: n.Line, Column: n.Column, Description: fmt.Sprintf(format, args...)})
}

func (d *yamlDecoder) at(protoPath string, n *yaml.Node, key string) {
	d.pos[protoPath] = yamlPos{n.Line, n.Column, key}
}

// locate gives a Validate error the line and YAML key of the field it
// names, or of its closest enclosing field that was written.
func (d *yamlDecoder) locate(fe record.Violation, root *yaml.Node) record.Violation {
	path := fe.Field
	rest := ""
	for {
		if p, ok := d.pos[path]; ok {
			fe.Line, fe.Column, fe.Field = p.line, p.column, p.key+rest
			return fe
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			break
		}
		rest = path[i:] + rest
		path = path[:i]
	}
	fe.Line, fe.Column = root.Line, root.Column
	return fe
}

const topKeys = "peer_team_id, recipient_class, tlp_ceiling, rules, constituency, need_to_know, taxonomy_allow, taxonomy_deny, max_hops"

// pairs checks that n is a mapping and returns its key/value pairs,
// refusing aliases, non-scalar keys and duplicate keys.
func (d *yamlDecoder) pairs(n *yaml.Node, key string) [][2]*yaml.Node {
	if n.Kind == yaml.AliasNode {
		d.fail(n, key, "YAML aliases are not supported in policies; write the value out")
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		d.fail(n, key, "must be a mapping of keys to values")
		return nil
	}
	var out [][2]*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, key, "keys must be plain words")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(k, join(key, k.Value), "is given twice (first on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func (d *yamlDecoder) top(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		d.fail(n, "policy", "is empty")
		return
	}
	for _, kv := range d.pairs(n, "") {
		k, v := kv[0], kv[1]
		key := k.Value
		switch key {
		case "peer_team_id":
			d.at(key, v, key)
			d.p.PeerTeamId = d.str(v, key)
		case "recipient_class":
			d.at(key, v, key)
			d.p.RecipientClass = irxv1.RecipientClass(d.enum(v, key, "RECIPIENT_CLASS_", irxv1.RecipientClass_value, nil))
		case "tlp_ceiling":
			d.at(key, v, key)
			d.p.TlpCeiling = irxv1.Tlp(d.enum(v, key, "TLP_", irxv1.Tlp_value, map[string]string{"AMBER+STRICT": "AMBER_STRICT", "WHITE": "CLEAR"}))
		case "need_to_know":
			d.at(key, v, key)
			d.p.NeedToKnow = d.boolean(v, key)
		case "max_hops":
			d.at(key, v, key)
			d.p.MaxHops = uint32(d.integer(v, key, 0, math.MaxUint32))
		case "taxonomy_allow":
			d.at(key, v, key)
			d.p.TaxonomyAllow = d.strs(v, key, key)
		case "taxonomy_deny":
			d.at(key, v, key)
			d.p.TaxonomyDeny = d.strs(v, key, key)
		case "constituency":
			d.at(key, v, key)
			d.constituency(v)
		case "rules":
			d.at(key, v, key)
			d.rules(v)
		case "version", "create_time":
			d.fail(k, key, "is output only: the policy service sets it when it stores the policy; remove it")
		default:
			d.fail(k, key, "unknown key; allowed: %s", topKeys)
		}
	}
}

func (d *yamlDecoder) constituency(n *yaml.Node) {
	c := &irxv1.Constituency{}
	d.p.Constituency = c
	for _, kv := range d.pairs(n, "constituency") {
		k, v := kv[0], kv[1]
		key := "constituency." + k.Value
		switch k.Value {
		case "cidrs":
			c.Cidrs = d.strs(v, key, key)
		case "domains":
			c.Domains = d.strs(v, key, key)
		case "asns":
			for i, e := range d.seq(v, key) {
				path := fmt.Sprintf("%s[%d]", key, i)
				d.at(path, e, path)
				s := strings.TrimPrefix(strings.TrimPrefix(e.Value, "AS"), "as")
				a, err := strconv.ParseUint(s, 10, 32)
				if e.Kind != yaml.ScalarNode || err != nil {
					d.fail(e, path, "%q is not an autonomous system number (e.g. 64500 or AS64500)", e.Value)
					continue
				}
				c.Asns = append(c.Asns, uint32(a))
			}
		default:
			d.fail(k, key, "unknown key; allowed: cidrs, asns, domains")
		}
	}
}

func (d *yamlDecoder) rules(n *yaml.Node) {
	for _, kv := range d.pairs(n, "rules") {
		k, v := kv[0], kv[1]
		key := "rules." + k.Value
		i := len(d.p.Rules)
		base := fmt.Sprintf("rules[%d]", i)
		r := &irxv1.ClassRule{}
		d.at(base, k, key)
		d.at(base+".info_class", k, key)
		class, ok := parseClass(k.Value)
		if !ok {
			d.fail(k, key, "%q is not an information class; one of %s", k.Value, classChoices())
			continue
		}
		r.InfoClass = class
		switch v.Kind {
		case yaml.ScalarNode:
			d.at(base+".action", v, key)
			r.Action = d.action(v, key)
		case yaml.MappingNode:
			for _, kv2 := range d.pairs(v, key) {
				k2, v2 := kv2[0], kv2[1]
				key2 := key + "." + k2.Value
				d.at(base+"."+k2.Value, v2, key2)
				switch k2.Value {
				case "action":
					r.Action = d.action(v2, key2)
				case "ipv4_prefix_length":
					x := uint32(d.integer(v2, key2, 0, 32))
					r.Ipv4PrefixLength = &x
				case "ipv6_prefix_length":
					x := uint32(d.integer(v2, key2, 0, 128))
					r.Ipv6PrefixLength = &x
				default:
					d.fail(k2, key2, "unknown key; allowed: action, ipv4_prefix_length, ipv6_prefix_length")
				}
			}
		default:
			d.fail(v, key, "must be an action (forward, strip, pseudonymise, generalise) or a mapping with action and prefix lengths")
			continue
		}
		d.p.Rules = append(d.p.Rules, r)
	}
}

func (d *yamlDecoder) scalar(n *yaml.Node, key string) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return true
	case yaml.AliasNode:
		d.fail(n, key, "YAML aliases are not supported in policies; write the value out")
	default:
		d.fail(n, key, "must be a single value")
	}
	return false
}

func (d *yamlDecoder) str(n *yaml.Node, key string) string {
	if !d.scalar(n, key) {
		return ""
	}
	return n.Value
}

func (d *yamlDecoder) boolean(n *yaml.Node, key string) bool {
	if !d.scalar(n, key) {
		return false
	}
	switch n.Value {
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	}
	d.fail(n, key, "%q is not true or false", n.Value)
	return false
}

func (d *yamlDecoder) integer(n *yaml.Node, key string, lo, hi int64) int64 {
	if !d.scalar(n, key) {
		return 0
	}
	x, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || x < lo || x > hi {
		d.fail(n, key, "%q is not a whole number from %d to %d", n.Value, lo, hi)
		return 0
	}
	return x
}

func (d *yamlDecoder) seq(n *yaml.Node, key string) []*yaml.Node {
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Content
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
	case yaml.AliasNode:
		d.fail(n, key, "YAML aliases are not supported in policies; write the value out")
		return nil
	}
	d.fail(n, key, "must be a list, e.g. [a, b] or one \"- item\" per line")
	return nil
}

func (d *yamlDecoder) strs(n *yaml.Node, key, protoPath string) []string {
	var out []string
	for i, e := range d.seq(n, key) {
		path := fmt.Sprintf("%s[%d]", key, i)
		d.at(fmt.Sprintf("%s[%d]", protoPath, i), e, path)
		if d.scalar(e, path) {
			out = append(out, e.Value)
		}
	}
	return out
}

// enumWord normalises how a policy writes an enum value: case, '-' and ' '
// for '_', an optional prefix.
func enumWord(s, prefix string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.NewReplacer("-", "_", " ", "_").Replace(u)
	return strings.TrimPrefix(u, prefix)
}

func (d *yamlDecoder) enum(n *yaml.Node, key, prefix string, values map[string]int32, aliases map[string]string) int32 {
	if !d.scalar(n, key) {
		return 0
	}
	w := strings.TrimPrefix(enumWord(n.Value, prefix), "TLP:")
	if a, ok := aliases[w]; ok {
		w = a
	}
	if v, ok := values[prefix+w]; ok && v != 0 {
		return v
	}
	var choices []string
	for name, v := range values {
		if v != 0 {
			choices = append(choices, strings.ToLower(strings.TrimPrefix(name, prefix)))
		}
	}
	slices.Sort(choices)
	d.fail(n, key, "%q is not one of %s", n.Value, strings.Join(choices, ", "))
	return 0
}

func (d *yamlDecoder) action(n *yaml.Node, key string) irxv1.DisclosureAction {
	return irxv1.DisclosureAction(d.enum(n, key, "DISCLOSURE_ACTION_", irxv1.DisclosureAction_value,
		map[string]string{"PSEUDONYMIZE": "PSEUDONYMISE", "GENERALIZE": "GENERALISE"}))
}

func parseClass(s string) (irxv1.InfoClass, bool) {
	v, ok := irxv1.InfoClass_value["INFO_CLASS_"+enumWord(s, "INFO_CLASS_")]
	if !ok || v == 0 {
		return 0, false
	}
	return irxv1.InfoClass(v), true
}
