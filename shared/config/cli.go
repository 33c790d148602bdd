package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/k8s-llm-monitor/k8s-llm-monitor/shared/version"
)

// Command is what the agent's and the aggregator's command lines share:
// their flags plus --log-level and --version, usage text, loading and
// validating the configuration, and a JSON logger on stderr that klog
// (client-go's logger) writes through too.
type Command struct {
	Name     string                  // "agent" or "aggregator"
	Usage    string                  // text between the title line and the flags
	Register func(fs *pflag.FlagSet) // RegisterAgentFlags or RegisterAggregatorFlags
	Validate func(c *Config) []error // (*Config).ValidateAgent or ValidateAggregator
}

// Parse parses args and loads the configuration. When the command should
// stop here (--help, --version, a bad flag or an invalid configuration) it
// returns ok false and the exit code: 0, or 2 after saying what is wrong.
func (c Command) Parse(args []string, stdout, stderr io.Writer) (cfg *Config, logger *slog.Logger, code int, ok bool) {
	fs := pflag.NewFlagSet(c.Name, pflag.ContinueOnError)
	// pflag prints errors and usage itself; this function says both, so
	// that --help goes to stdout (--help | less) and errors to stderr.
	fs.SetOutput(io.Discard)
	c.Register(fs)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "k8s-llm-monitor %s %s\n\n%s\nEvery flag can also be set in the YAML file (--config) or as K8SMON_<KEY>,\ne.g. K8SMON_NATS_URL. Flags:\n", c.Name, version.Version, c.Usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, nil, 0, false
		}
		fmt.Fprintf(stderr, "%v\nRun '%s --help' for the flags.\n", err, c.Name)
		return nil, nil, 2, false
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return nil, nil, 0, false
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "--log-level %q: want debug, info, warn or error\n", *logLevel)
		return nil, nil, 2, false
	}
	logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	// client-go logs through klog: send it to the same handler, so that a
	// pod writes one JSON stream (klog's V(n) is slog level -n).
	klog.SetSlogLogger(logger)
	cfg, err := Load(fs)
	if err != nil {
		logger.Error("configuration", "error", err)
		return nil, nil, 2, false
	}
	if errs := c.Validate(cfg); len(errs) > 0 {
		for _, e := range errs {
			logger.Error("invalid configuration", "error", e)
		}
		return nil, nil, 2, false
	}
	return cfg, logger, 0, true
}
