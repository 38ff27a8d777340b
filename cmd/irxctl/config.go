package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/irxfed/irx/pki"
)

// configFile is the context file, in the spirit of a kubeconfig: named
// connection settings and the one to use by default.
type configFile struct {
	CurrentContext string          `yaml:"current-context,omitempty" json:"current-context,omitempty"`
	Contexts       []contextConfig `yaml:"contexts,omitempty" json:"contexts,omitempty"`
}

type contextConfig struct {
	Name     string `yaml:"name" json:"name"`
	Addr     string `yaml:"addr,omitempty" json:"addr,omitempty"`
	CAFile   string `yaml:"ca-file,omitempty" json:"ca-file,omitempty"`
	CertFile string `yaml:"cert-file,omitempty" json:"cert-file,omitempty"`
	KeyFile  string `yaml:"key-file,omitempty" json:"key-file,omitempty"`
}

func (f *configFile) find(name string) *contextConfig {
	for i := range f.Contexts {
		if f.Contexts[i].Name == name {
			return &f.Contexts[i]
		}
	}
	return nil
}

// configPath is $IRXCTL_CONFIG, else irxctl/config.yaml under
// $XDG_CONFIG_HOME or ~/.config.
func (c *cli) configPath() (string, error) {
	if p := c.getenv("IRXCTL_CONFIG"); p != "" {
		return p, nil
	}
	if d := c.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "irxctl", "config.yaml"), nil
	}
	home := c.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no config file: set IRXCTL_CONFIG or HOME: %w", err)
		}
	}
	return filepath.Join(home, ".config", "irxctl", "config.yaml"), nil
}

// loadConfig reads the context file for use, with relative file names
// made relative to the config file, as in a kubeconfig, so the file works
// from any directory.
func (c *cli) loadConfig() (*configFile, string, error) {
	cf, path, err := c.loadRawConfig()
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Dir(path)
	for i := range cf.Contexts {
		for _, p := range []*string{&cf.Contexts[i].CAFile, &cf.Contexts[i].CertFile, &cf.Contexts[i].KeyFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	return cf, path, nil
}

func (c *cli) saveConfig(path string, cf *configFile) error {
	data, err := yaml.Marshal(cf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// The file points at private keys: keep it private and never half
	// written.
	return pki.WriteFileAtomic(path, data, 0o600)
}

// currentContext returns the settings of --context, else of the file's
// current-context, else none.
func (c *cli) currentContext() (contextConfig, error) {
	cf, path, err := c.loadConfig()
	if err != nil {
		return contextConfig{}, err
	}
	name := cf.CurrentContext
	if c.conn.context.set {
		name = c.conn.context.val
	}
	if name == "" {
		return contextConfig{}, nil
	}
	ctx := cf.find(name)
	switch {
	case ctx == nil && c.conn.context.set:
		return contextConfig{}, usageErrorf("--context %q is not in %s", name, path)
	case ctx == nil:
		return contextConfig{}, fmt.Errorf("current-context %q is not in %s", name, path)
	}
	return *ctx, nil
}

func configCommand() *command {
	return &command{
		name:  "config",
		usage: "config COMMAND",
		short: "Manage named connection contexts in the config file",
		subs: []*command{
			{
				name:         "get-contexts",
				usage:        "config get-contexts",
				short:        "List the contexts; * marks the current one",
				printsOutput: true,
				setup: func(*flag.FlagSet) action {
					return func(_ context.Context, c *cli, _ []string) error { return c.getContexts() }
				},
			},
			{
				name:    "use-context",
				usage:   "config use-context NAME",
				short:   "Make NAME the current context",
				minArgs: 1, maxArgs: 1,
				setup: func(*flag.FlagSet) action {
					return func(_ context.Context, c *cli, args []string) error { return c.useContext(args[0]) }
				},
			},
			{
				name:  "set-context",
				usage: "config set-context NAME [--addr ADDR] [--ca-file FILE] [--cert-file FILE] [--key-file FILE]",
				short: "Create a context or change the settings given",
				long: `Only the settings given change; give an empty value (--ca-file "") to clear one.
Relative file names are stored as absolute ones. The first context created
becomes the current one.`,
				minArgs: 1, maxArgs: 1,
				setup: func(fs *flag.FlagSet) action {
					fs.String("addr", "", "`ADDR` of the node's operator API, host[:port]")
					fs.String("ca-file", "", "`FILE` with the team CA certificate, PEM")
					fs.String("cert-file", "", "`FILE` with the operator certificate, PEM")
					fs.String("key-file", "", "`FILE` with the operator private key, PEM")
					return func(_ context.Context, c *cli, args []string) error {
						given := map[string]string{}
						fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
						return c.setContext(args[0], given)
					}
				},
			},
		},
	}
}

func (c *cli) getContexts() error {
	cf, _, err := c.loadConfig()
	if err != nil {
		return err
	}
	switch c.output {
	case "json", "yaml":
		return c.printPlain(cf)
	}
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "CURRENT\tNAME\tADDR\tCA-FILE\tCERT-FILE\tKEY-FILE")
	for _, ctx := range cf.Contexts {
		mark := ""
		if ctx.Name == cf.CurrentContext {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, ctx.Name, dash(ctx.Addr), dash(ctx.CAFile), dash(ctx.CertFile), dash(ctx.KeyFile))
	}
	return tw.Flush()
}

func (c *cli) useContext(name string) error {
	cf, path, err := c.loadRawConfig()
	if err != nil {
		return err
	}
	if cf.find(name) == nil {
		var names []string
		for _, ctx := range cf.Contexts {
			names = append(names, ctx.Name)
		}
		return fmt.Errorf("no context %q in %s (contexts: %s)", name, path, dash(strings.Join(names, ", ")))
	}
	cf.CurrentContext = name
	if err := c.saveConfig(path, cf); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Switched to context %q.\n", name)
	return nil
}

func (c *cli) setContext(name string, given map[string]string) error {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return usageErrorf("context name %q: must be non-empty without spaces", name)
	}
	cf, path, err := c.loadRawConfig()
	if err != nil {
		return err
	}
	ctx := cf.find(name)
	created := ctx == nil
	if created {
		cf.Contexts = append(cf.Contexts, contextConfig{Name: name})
		ctx = &cf.Contexts[len(cf.Contexts)-1]
	}
	if v, ok := given["addr"]; ok {
		if v != "" {
			if _, err := normalizeAddr(v); err != nil {
				return usageErrorf("%v", err)
			}
		}
		ctx.Addr = v
	}
	for flagName, field := range map[string]*string{"ca-file": &ctx.CAFile, "cert-file": &ctx.CertFile, "key-file": &ctx.KeyFile} {
		v, ok := given[flagName]
		if !ok {
			continue
		}
		if v != "" {
			// The user typed the name relative to where they are, not to
			// the config file.
			if v, err = filepath.Abs(v); err != nil {
				return err
			}
		}
		*field = v
	}
	if cf.CurrentContext == "" {
		cf.CurrentContext = name
	}
	slices.SortStableFunc(cf.Contexts, func(a, b contextConfig) int { return strings.Compare(a.Name, b.Name) })
	if err := c.saveConfig(path, cf); err != nil {
		return err
	}
	verb := "modified"
	if created {
		verb = "created"
	}
	fmt.Fprintf(c.stdout, "Context %q %s in %s.\n", name, verb, path)
	return nil
}

// loadRawConfig reads the file as written; a missing file is an empty one.
// Commands that rewrite the file use it, so relative names stay relative.
func (c *cli) loadRawConfig() (*configFile, string, error) {
	path, err := c.configPath()
	if err != nil {
		return nil, "", err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &configFile{}, path, nil
	}
	if err != nil {
		return nil, "", err
	}
	var cf configFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	// A misspelt key would silently leave a setting out, and with it maybe
	// the TLS files: refuse it.
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("config %s: %w", path, err)
	}
	return &cf, path, nil
}
