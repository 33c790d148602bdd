//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ca is a certificate authority the harness generates.
type ca struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// keyPair is a certificate and its key, PEM encoded, and the files they
// were written to.
type keyPair struct {
	certPEM, keyPEM   []byte
	certFile, keyFile string
}

var serial int64 = 1

func newCA(t *testing.T, cn string) *ca {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &ca{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate: a server certificate when ips or dns are
// given, a client certificate always.
func (c *ca) issue(t *testing.T, cn string, orgs []string, ips []net.IP, dns []string) *keyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return &keyPair{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}
}

// write stores the pair as dir/name.crt and dir/name.key.
func (k *keyPair) write(t *testing.T, dir, name string) *keyPair {
	t.Helper()
	k.certFile = filepath.Join(dir, name+".crt")
	k.keyFile = filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(k.certFile, k.certPEM, 0o600))
	require.NoError(t, os.WriteFile(k.keyFile, k.keyPEM, 0o600))
	return k
}

func (k *keyPair) tlsCert(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(k.certPEM, k.keyPEM)
	require.NoError(t, err)
	return c
}

// writeCA stores the CA certificate as dir/name.crt.
func (c *ca) write(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name+".crt")
	require.NoError(t, os.WriteFile(p, c.certPEM, 0o600))
	return p
}

// writeServiceAccountKey writes the RSA key that signs service account
// tokens; the API server reads its public half from the same file.
func writeServiceAccountKey(t *testing.T, dir string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p := filepath.Join(dir, "sa.key")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600))
	return p
}

func tlsServerConfig(t *testing.T, kp *keyPair) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{kp.tlsCert(t)}, MinVersion: tls.VersionTLS12}
}
