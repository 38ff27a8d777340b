package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/irxfed/irx/federation"
	"github.com/irxfed/irx/node"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/record"
)

// fileConfig is the YAML configuration file. Flags override it.
type fileConfig struct {
	TeamID  string `yaml:"team_id"`
	NodeID  string `yaml:"node_id"`
	DataDir string `yaml:"data_dir"`
	Listen  struct {
		API           string `yaml:"api"`
		Raft          string `yaml:"raft"`
		RaftAdvertise string `yaml:"raft_advertise"`
		Metrics       string `yaml:"metrics"`
		Federation    string `yaml:"federation"`
	} `yaml:"listen"`
	Cluster struct {
		// Members lists the initial members of a new team (static
		// bootstrap); every one of them is started with the same list.
		Members []struct {
			ID   string `yaml:"id"`
			Raft string `yaml:"raft"`
		} `yaml:"members"`
		// Join starts without bootstrapping, to be added by AddMember.
		Join bool `yaml:"join"`
	} `yaml:"cluster"`
	TLS struct {
		CAFile           string `yaml:"ca_file"`
		CertFile         string `yaml:"cert_file"`
		KeyFile          string `yaml:"key_file"`
		APITLSOnLoopback bool   `yaml:"api_tls_on_loopback"`
	} `yaml:"tls"`
	Raft struct {
		HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout"`
		SnapshotThreshold uint64        `yaml:"snapshot_threshold"`
		SnapshotInterval  time.Duration `yaml:"snapshot_interval"`
		TrailingLogs      uint64        `yaml:"trailing_logs"`
	} `yaml:"raft"`
	Access struct {
		// FirstOperator is the operator name bound to every role at the
		// team's first start.
		FirstOperator string `yaml:"first_operator"`
	} `yaml:"access"`
	// EraseWithin bounds the time from a withdrawal applied here to its
	// values being gone from every file of data_dir.
	EraseWithin time.Duration `yaml:"erase_within"`
	// MemoryLimit is the node's memory limit ("768MiB"): the Go runtime's
	// (debug.SetMemoryLimit), and the bound federation's streams keep
	// within. Default: GOMEMLIMIT, else 3/4 of the cgroup's, else 1GiB.
	MemoryLimit string `yaml:"memory_limit"`
	// Federation bounds what each peer may cost the node.
	Federation struct {
		StreamsPerPeer int    `yaml:"streams_per_peer"`
		StreamBytes    string `yaml:"stream_bytes"`
	} `yaml:"federation"`
	Storage struct {
		MinFreeBytes        int64         `yaml:"min_free_bytes"`
		StallTimeout        time.Duration `yaml:"stall_timeout"`
		ScrubInterval       time.Duration `yaml:"scrub_interval"`
		ScrubBytesPerSecond int64         `yaml:"scrub_bytes_per_second"`
	} `yaml:"storage"`
	// FutureSkew is how far past this node's clock a time in a record
	// may lie.
	FutureSkew time.Duration `yaml:"future_skew"`
	// Webhooks: HTTPS endpoints the leader posts alerts and warnings to,
	// signed with HMAC-SHA256 under the secret in secret_file (read at
	// start; never logged).
	Webhooks []struct {
		URL        string `yaml:"url"`
		SecretFile string `yaml:"secret_file"`
	} `yaml:"webhooks"`
	// Import holds what ImportIncidents applies where a document does
	// not say: a TLP (TLP_AMBER or AMBER) and a taxonomy CLASS/TYPE.
	Import struct {
		DefaultTLP      string `yaml:"default_tlp"`
		DefaultTaxonomy string `yaml:"default_taxonomy"`
	} `yaml:"import"`
	// Retention: how often the leader advances the team's retention
	// clock, and the shortest keep a retention rule may have.
	Retention struct {
		Tick    time.Duration `yaml:"tick"`
		MinKeep time.Duration `yaml:"min_keep"`
	} `yaml:"retention"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
}

// loadFile reads a configuration file; unknown keys are errors, so a typo
// cannot silently leave a default in place.
func loadFile(path string) (fileConfig, error) {
	var fc fileConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config %s: %s", path, yamlProblem(err))
	}
	return fc, nil
}

// options are irxd's settings after file and flags are merged.
type options struct {
	node       node.Config
	federation federation.Config
	debugAddr  string
	logLevel   string
	logFormat  string
	// memoryLimit is memory_limit in bytes, 0 if not set.
	memoryLimit int64
	// showVersion prints the version and exits: --version.
	showVersion bool
}

// parseOptions merges defaults, the config file and the flags that were set.
func parseOptions(args []string, stderr io.Writer, getenv func(string) string) (options, error) {
	fs := flag.NewFlagSet("irxd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath = fs.String("config", "", "YAML configuration file")
		team       = fs.String("team", "", "team id (default \"dev\")")
		nodeID     = fs.String("node", "", "node id within the team (default \"node1\")")
		dataDir    = fs.String("data-dir", "", "data directory (default \"irx-data\")")
		apiAddr    = fs.String("api-addr", "", "operator gRPC API address (default "+node.DefaultAPIAddr+")")
		raftAddr   = fs.String("raft-addr", "", "intra-cluster Raft address (default "+node.DefaultRaftAddr+")")
		advertise  = fs.String("raft-advertise", "", "Raft address other members dial (default: raft-addr)")
		metrics    = fs.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (off by default)")
		fedAddr    = fs.String("federation-addr", "", "peer-facing federation API address, mutual TLS (default "+federation.DefaultAddr+")")
		caFile     = fs.String("ca-file", "", "team CA certificate (PEM); omit all TLS files for the development PKI")
		certFile   = fs.String("cert-file", "", "node certificate (PEM)")
		keyFile    = fs.String("key-file", "", "node private key (PEM)")
		members    = fs.String("members", "", "initial members of a new team: id=host:port,... (static bootstrap; include this node)")
		join       = fs.Bool("join", false, "start without bootstrapping and wait to be added with ClusterService/AddMember")
		restore    = fs.String("restore", "", "start a new team from this backup file (irxctl backup); the data directory must be empty, and the backup of this team")
		snapEvery  = fs.Uint64("snapshot-threshold", 0, "log entries between snapshots (default 8192)")
		trailing   = fs.Uint64("trailing-logs", 0, "log entries kept after a snapshot (default 10240)")
		snapCheck  = fs.Duration("snapshot-interval", 0, "how often to check snapshot-threshold (default 30s)")
		eraseIn    = fs.Duration("erase-within", 0, "bound on the time until values a peer's withdrawal removed are gone from every file of the data directory (default "+node.DefaultEraseWithin.String()+")")
		firstOp    = fs.String("first-operator", "", "the operator NAME (irx://TEAM/operator/NAME) bound to every role at the team's first start (default admin)")
		minFree    = fs.Int64("min-free-bytes", 0, "free space kept on the data directory's file systems: below it the node refuses writes and hands its leadership away; -1: none (default 256 MiB)")
		stallAfter = fs.Duration("disk-stall-timeout", 0, "how long a write to the node's stores may take before the node treats its disk as stalled (default 2s)")
		scrubEvery = fs.Duration("scrub-interval", 0, "time between background checks of every block of the state machine's files; negative: none (default 24h)")
		retTick    = fs.Duration("retention-tick", 0, "how often the leader advances the team's retention clock (default "+node.DefaultRetentionTick.String()+")")
		retMinKeep = fs.Duration("retention-min-keep", 0, "the shortest keep a retention rule may have (default "+node.DefaultRetentionMinKeep.String()+")")
		skew       = fs.Duration("future-skew", 0, "how far past this node's clock a time in a record may lie before the write is refused (default "+node.DefaultFutureSkew.String()+")")
		debugAddr  = fs.String("debug-addr", "", "serve Go's pprof profiles on this loopback address (off by default)")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error (default info)")
		logFormat  = fs.String("log-format", "", "text or json (default text)")
		showVer    = fs.Bool("version", false, "print the version and the commit irxd was built from, and exit")
		memLimit   = fs.String("memory-limit", "", "the node's memory limit, such as 768MiB (default: GOMEMLIMIT, else 3/4 of the cgroup's limit, else 1GiB)")
		perPeer    = fs.Int("streams-per-peer", 0, fmt.Sprintf("Subscribe streams one peer may have open on this node (default %d)", federation.DefaultStreamsPerPeer))
		statsEvery = fs.Duration("statistics-interval", 0, "how often the leader publishes the team's statistics to peers whose policy discloses the statistical class, when they changed (default "+federation.DefaultStatisticsInterval.String()+")")
		streamB    = fs.String("stream-bytes", "", fmt.Sprintf("bytes one Subscribe stream may hold unsent, such as 4MiB (default %dMiB)", federation.DefaultStreamBytes>>20))
	)
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *showVer {
		return options{showVersion: true}, nil
	}
	var fc fileConfig
	if *configPath != "" {
		var err error
		if fc, err = loadFile(*configPath); err != nil {
			return options{}, err
		}
	}
	o := options{
		node: node.Config{
			TeamID: fc.TeamID, NodeID: fc.NodeID, DataDir: fc.DataDir,
			APIAddr: fc.Listen.API, RaftAddr: fc.Listen.Raft, RaftAdvertise: fc.Listen.RaftAdvertise, MetricsAddr: fc.Listen.Metrics,
			TLS: node.TLSConfig{
				CAFile: fc.TLS.CAFile, CertFile: fc.TLS.CertFile, KeyFile: fc.TLS.KeyFile,
				APITLSOnLoopback: fc.TLS.APITLSOnLoopback,
			},
			Raft: node.RaftConfig{
				HeartbeatTimeout:  fc.Raft.HeartbeatTimeout,
				SnapshotThreshold: fc.Raft.SnapshotThreshold,
				SnapshotInterval:  fc.Raft.SnapshotInterval,
				TrailingLogs:      fc.Raft.TrailingLogs,
			},
			EraseWithin:   fc.EraseWithin,
			FirstOperator: fc.Access.FirstOperator,
			Storage: node.StorageConfig{
				MinFreeBytes: fc.Storage.MinFreeBytes, StallTimeout: fc.Storage.StallTimeout,
				ScrubInterval: fc.Storage.ScrubInterval, ScrubBytesPerSecond: fc.Storage.ScrubBytesPerSecond,
			},
			FutureSkew: fc.FutureSkew,
			Retention:  node.RetentionConfig{Tick: fc.Retention.Tick, MinKeep: fc.Retention.MinKeep},
		},
		federation: federation.Config{Addr: fc.Listen.Federation, StreamsPerPeer: fc.Federation.StreamsPerPeer},
		logLevel:   fc.Log.Level,
		logFormat:  fc.Log.Format,
	}
	for i, h := range fc.Webhooks {
		secret, err := readSecret(h.SecretFile)
		if err != nil {
			return options{}, fmt.Errorf("webhooks[%d].secret_file: %w", i, err)
		}
		o.node.Webhooks = append(o.node.Webhooks, node.Webhook{URL: h.URL, Secret: secret})
	}
	var sizeErr error
	size := func(key, v string, dst *int64) {
		if v == "" {
			return
		}
		n, err := parseBytes(v)
		if err != nil {
			sizeErr = errors.Join(sizeErr, fmt.Errorf("%s: %w", key, err))
		}
		*dst = n
	}
	size("memory_limit", fc.MemoryLimit, &o.memoryLimit)
	imp, impErr := importDefaults(fc.Import.DefaultTLP, fc.Import.DefaultTaxonomy)
	sizeErr = errors.Join(sizeErr, impErr)
	o.node.Import = imp
	size("federation.stream_bytes", fc.Federation.StreamBytes, &o.federation.StreamBytes)
	if fc.Federation.StreamsPerPeer < 0 {
		sizeErr = errors.Join(sizeErr, fmt.Errorf("federation.streams_per_peer: %d is negative", fc.Federation.StreamsPerPeer))
	}
	override := map[string]*string{
		"team": &o.node.TeamID, "node": &o.node.NodeID, "data-dir": &o.node.DataDir,
		"api-addr": &o.node.APIAddr, "raft-addr": &o.node.RaftAddr, "raft-advertise": &o.node.RaftAdvertise, "metrics-addr": &o.node.MetricsAddr,
		"federation-addr": &o.federation.Addr,
		"ca-file":         &o.node.TLS.CAFile, "cert-file": &o.node.TLS.CertFile, "key-file": &o.node.TLS.KeyFile,
		"log-level": &o.logLevel, "log-format": &o.logFormat, "debug-addr": &o.debugAddr,
		"first-operator": &o.node.FirstOperator,
	}
	values := map[string]*string{
		"team": team, "node": nodeID, "data-dir": dataDir, "api-addr": apiAddr, "raft-addr": raftAddr, "metrics-addr": metrics,
		"federation-addr": fedAddr,
		"raft-advertise":  advertise, "ca-file": caFile, "cert-file": certFile, "key-file": keyFile,
		"log-level": logLevel, "log-format": logFormat, "debug-addr": debugAddr,
		"first-operator": firstOp,
	}
	for _, m := range fc.Cluster.Members {
		o.node.Members = append(o.node.Members, node.Member{ID: m.ID, RaftAddr: m.Raft})
	}
	o.node.Join = fc.Cluster.Join
	// Environment variables sit between the file and the flags: IRX_ plus
	// the flag name in upper case with '_' for '-' (IRX_DATA_DIR).
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		// --config and --version have none: IRX_VERSION set for another
		// program must not turn a daemon into one that prints and exits.
		if set[f.Name] || f.Name == "config" || f.Name == "version" {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if envErr != nil {
		return options{}, envErr
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if dst, ok := override[f.Name]; ok {
			*dst = *values[f.Name]
		}
		switch f.Name {
		case "members":
			o.node.Members, err = parseMembers(*members)
		case "join":
			o.node.Join = *join
		case "restore":
			o.node.Restore = *restore
		case "snapshot-threshold":
			o.node.Raft.SnapshotThreshold = *snapEvery
		case "trailing-logs":
			o.node.Raft.TrailingLogs = *trailing
		case "snapshot-interval":
			o.node.Raft.SnapshotInterval = *snapCheck
		case "erase-within":
			o.node.EraseWithin = *eraseIn
		case "memory-limit":
			size("--memory-limit", *memLimit, &o.memoryLimit)
		case "stream-bytes":
			size("--stream-bytes", *streamB, &o.federation.StreamBytes)
		case "streams-per-peer":
			if o.federation.StreamsPerPeer = *perPeer; *perPeer < 0 {
				sizeErr = errors.Join(sizeErr, fmt.Errorf("--streams-per-peer: %d is negative", *perPeer))
			}
		case "min-free-bytes":
			o.node.Storage.MinFreeBytes = *minFree
		case "disk-stall-timeout":
			o.node.Storage.StallTimeout = *stallAfter
		case "scrub-interval":
			o.node.Storage.ScrubInterval = *scrubEvery
		case "future-skew":
			o.node.FutureSkew = *skew
		case "statistics-interval":
			o.federation.StatisticsInterval = *statsEvery
		case "retention-tick":
			o.node.Retention.Tick = *retTick
		case "retention-min-keep":
			o.node.Retention.MinKeep = *retMinKeep
		}
	})
	// The node refuses a webhook pointing at any listener of this process,
	// and these two are not the node's own.
	fed := o.federation.Addr
	if fed == "" {
		fed = federation.DefaultAddr
	}
	o.node.OtherListeners = []string{fed, o.debugAddr}
	return o, errors.Join(err, sizeErr)
}

func envName(flagName string) string {
	return "IRX_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseMembers reads "id=host:port,id=host:port".
func parseMembers(s string) ([]node.Member, error) {
	var out []node.Member
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--members: %q is not id=host:port", part)
		}
		out = append(out, node.Member{ID: id, RaftAddr: addr})
	}
	return out, nil
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type .*`)

// yamlProblem renders a YAML decoding error as one line that names the key,
// without Go type names.
func yamlProblem(err error) string {
	msg := unknownField.ReplaceAllString(err.Error(), `unknown key "$1"`)
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:")
	msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
	return strings.TrimPrefix(msg, "; ")
}

// readSecret reads a webhook's secret: the file's content without a final
// line break.
func readSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(b, "\r\n"), nil
}

// importDefaults reads the import section: a TLP by its name with or
// without "TLP_" (amber_strict or AMBER+STRICT), a taxonomy CLASS/TYPE.
func importDefaults(tlp, taxonomy string) (node.ImportDefaults, error) {
	var d node.ImportDefaults
	var errs []error
	if tlp != "" {
		name := "TLP_" + strings.NewReplacer("+", "_", "-", "_").Replace(strings.ToUpper(strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(tlp), "TLP_"), "tlp_")))
		v, ok := irxv1.Tlp_value[name]
		if !ok || v == 0 {
			errs = append(errs, fmt.Errorf("import.default_tlp: %q is not a TLP: clear, green, amber, amber+strict or red", tlp))
		}
		d.TLP = irxv1.Tlp(v)
	}
	if taxonomy != "" {
		class, typ, _ := strings.Cut(strings.TrimSpace(taxonomy), "/")
		if !record.ValidTaxonomy(class, typ) {
			errs = append(errs, fmt.Errorf("import.default_taxonomy: %q is not CLASS/TYPE of the Reference Security Incident Taxonomy, e.g. other/undetermined", taxonomy))
		}
		d.Taxonomy = &irxv1.Taxonomy{Class: class, Type: typ}
	}
	return d, errors.Join(errs...)
}
