package gpu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The pod-resources API is one unary gRPC call on a local unix socket. The
// agent speaks that much gRPC itself, over the standard library's HTTP/2
// (h2c, as gRPC runs on a unix socket), instead of linking grpc-go and the
// protobuf runtime for it: they were about a sixth of the agent's
// executable, and the executable is most of the agent's memory. The tests
// run it against grpc-go's server with the kubelet's own generated types.
//
// What a unary call is on the wire (gRPC over HTTP/2): a POST to
// /<service>/<method> with content-type application/grpc and "te:
// trailers"; the request and the answer bodies are each one message,
// prefixed by a compression flag byte and a 4-byte big-endian length; the
// outcome is the grpc-status trailer (or header, when the server answers
// with trailers only), 0 for success.

// errUnimplemented is gRPC status 12: the server does not serve the method.
var errUnimplemented = errors.New("grpc: method not implemented by the server")

// gRPC status codes that the agent tells apart.
const (
	grpcOK            = 0
	grpcUnimplemented = 12
)

// unaryClient calls unary gRPC methods on a unix socket.
type unaryClient struct {
	transport *http.Transport
	client    *http.Client
	maxMsg    int
}

func newUnaryClient(socket string, maxMsg int) *unaryClient {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		Protocols:       &protocols,
		IdleConnTimeout: 5 * time.Minute,
	}
	return &unaryClient{transport: t, client: &http.Client{Transport: t}, maxMsg: maxMsg}
}

func (c *unaryClient) close() { c.transport.CloseIdleConnections() }

// call sends one request message (its protobuf encoding) to method and
// returns the answer's encoding.
func (c *unaryClient) call(ctx context.Context, method string, msg []byte) ([]byte, error) {
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
	copy(frame[5:], msg)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+method, bytes.NewReader(frame))
	if err != nil {
		return nil, fmt.Errorf("grpc request %s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if d, ok := ctx.Deadline(); ok {
		// The server gives up too, rather than work for no one.
		req.Header.Set("Grpc-Timeout", strconv.FormatInt(max(time.Until(d).Milliseconds(), 1), 10)+"m")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("grpc call %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("grpc call %s: HTTP %s", method, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return nil, fmt.Errorf("grpc call %s: answer is %q, not gRPC", method, ct)
	}
	// Trailers-only: an error before any message.
	if s := resp.Header.Get("Grpc-Status"); s != "" {
		return nil, grpcStatus(s, resp.Header.Get("Grpc-Message"))
	}
	body, err := readMessage(resp.Body, c.maxMsg)
	if err != nil {
		return nil, fmt.Errorf("grpc call %s: %w", method, err)
	}
	// Trailers arrive once the body is read to its end.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1)); err != nil {
		return nil, fmt.Errorf("grpc call %s: %w", method, err)
	}
	if err := grpcStatus(resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")); err != nil {
		return nil, err
	}
	if body == nil {
		return nil, fmt.Errorf("grpc call %s: no answer message", method)
	}
	return body, nil
}

// readMessage reads one length-prefixed message, refusing compressed ones
// (none was asked for) and any longer than maxMsg. A body that ends before
// any message returns nil: the status then says why.
func readMessage(r io.Reader, maxMsg int) ([]byte, error) {
	var prefix [5]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("read message prefix: %w", err)
	}
	if prefix[0] != 0 {
		return nil, errors.New("compressed message, none was asked for")
	}
	n := binary.BigEndian.Uint32(prefix[1:])
	if uint64(n) > uint64(maxMsg) {
		return nil, fmt.Errorf("message of %d bytes exceeds the limit of %d", n, maxMsg)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, fmt.Errorf("read message of %d bytes: %w", n, err)
	}
	return msg, nil
}

// grpcStatus turns a grpc-status value into nil (OK) or an error; the
// message is percent-encoded on the wire.
func grpcStatus(code, msg string) error {
	if code == "" {
		return errors.New("grpc: answer without grpc-status")
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return fmt.Errorf("grpc: invalid grpc-status %q", code)
	}
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	switch n {
	case grpcOK:
		return nil
	case grpcUnimplemented:
		return fmt.Errorf("%w: %s", errUnimplemented, msg)
	}
	return fmt.Errorf("grpc status %d: %s", n, msg)
}
