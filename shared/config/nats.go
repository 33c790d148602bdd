package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// maxTokenBytes bounds a token file: a ServiceAccount token is about 1 KiB.
const maxTokenBytes = 64 << 10

// NATSOptions turns the nats: block into connection options: authentication,
// TLS, and reconnecting forever, which both binaries want.
func (n NATSConfig) NATSOptions(name string) []nats.Option {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true),
	}
	switch {
	case n.CredsFile != "":
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	case n.TokenFile != "" && (n.AuthMode == "kubernetes" || fileExists(n.TokenFile)):
		// The kubelet rotates a projected token in place: read it on every
		// connect, so a reconnect after expiry presents the new one. A
		// refusal is transient here (a token not yet valid, the API server
		// briefly unreachable): keep retrying instead of giving up after
		// two.
		file := n.TokenFile
		opts = append(opts, nats.TokenHandler(func() string {
			tok, _ := ReadToken(file) // an empty token is refused by the server, which says so
			return tok
		}), nats.IgnoreAuthErrorAbort())
	}
	if n.TLSInsecure {
		// Secure with a base config first: RootCAs and ClientCert add to it.
		opts = append(opts, nats.Secure(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})) //nolint:gosec // asked for by nats.tls_insecure_skip_verify
	}
	if n.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(n.TLSCAFile))
	}
	if n.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(n.TLSCertFile, n.TLSKeyFile))
	}
	return opts
}

// CredentialKind names the credential NATSOptions presents, for logs:
// "credentials file", "token", "user", "token file", or "none".
func (n NATSConfig) CredentialKind() string {
	switch {
	case n.CredsFile != "":
		return "credentials file"
	case n.Token != "":
		return "token"
	case n.User != "":
		return "user"
	case n.TokenFile != "" && (n.AuthMode == "kubernetes" || fileExists(n.TokenFile)):
		return "token file " + n.TokenFile
	}
	return "none"
}

// ReadToken reads a token file (a projected ServiceAccount token), without
// surrounding whitespace.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenBytes {
		return "", errors.New("token file " + path + " is larger than 64 KiB")
	}
	return string(bytes.TrimSpace(b)), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// RedactURLs hides the credentials of every URL in a comma-separated list
// (nats.url may name several servers) for logs. A NATS URL's user without a
// password is a token, so it is hidden too; a user's name is kept when a
// password follows it (url.URL.Redacted).
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: keep nothing that could be a credential.
		if at := strings.LastIndex(s, "@"); at >= 0 {
			return "xxxxx" + s[at:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, hasPassword := u.User.Password(); !hasPassword {
		u.User = url.User("xxxxx")
	}
	return u.Redacted()
}
