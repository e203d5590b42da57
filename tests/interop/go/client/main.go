// Command wtclient is a minimal webtransport-go (v0.11.x, draft-15) client used by the
// pywebtransport interop tests. It dials one session, exercises a bidirectional stream,
// a unidirectional stream and datagrams, closes the session with a code and a reason,
// and prints exactly one JSON object on stdout describing what happened.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3/qlog"
	"github.com/quic-go/webtransport-go"
)

type result struct {
	OK               bool              `json:"ok"`
	Step             string            `json:"step"`
	Error            string            `json:"error,omitempty"`
	Status           int               `json:"status,omitempty"`
	ResponseHeaders  map[string]string `json:"response_headers,omitempty"`
	BidiEcho         string            `json:"bidi_echo"`
	UniReply         string            `json:"uni_reply"`
	DatagramEcho     string            `json:"datagram_echo"`
	DatagramAttempts int               `json:"datagram_attempts"`
	CloseCode        uint32            `json:"close_code"`
	CloseReason      string            `json:"close_reason"`
	Closed           bool              `json:"closed"`
	ElapsedMs        int64             `json:"elapsed_ms"`
}

func main() {
	urlFlag := flag.String("url", "", "WebTransport URL, e.g. https://localhost:4433/echo")
	caFile := flag.String("ca", "", "PEM file with the CA that signed the server certificate")
	insecure := flag.Bool("insecure", false, "skip server certificate verification")
	message := flag.String("message", "hello from webtransport-go", "payload for the bidi stream")
	uniMessage := flag.String("uni-message", "one-way from go", "payload for the uni stream")
	waitUniReply := flag.Bool("wait-uni-reply", true, "wait for a server-initiated uni stream after sending ours")
	closeCode := flag.Uint("close-code", 4711, "session close code")
	closeReason := flag.String("close-reason", "go client done", "session close reason")
	timeout := flag.Duration("timeout", 30*time.Second, "overall deadline")
	flag.Parse()

	start := time.Now()
	res := &result{CloseCode: uint32(*closeCode), CloseReason: *closeReason}
	err := run(res, *urlFlag, *caFile, *insecure, *message, *uniMessage, *waitUniReply, *timeout)
	res.ElapsedMs = time.Since(start).Milliseconds()
	if err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
		res.Step = "done"
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	// quic-go sends CONNECTION_CLOSE from its own goroutine: exiting at once can drop
	// it, leaving the server to find out by idle timeout. Linger briefly.
	time.Sleep(300 * time.Millisecond)
	if err != nil {
		os.Exit(1)
	}
}

func run(res *result, url, caFile string, insecure bool, message, uniMessage string, waitUniReply bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	tlsConf := &tls.Config{InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("no certificates in CA file")
		}
		tlsConf.RootCAs = pool
	}
	quicConf := &quic.Config{
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
		MaxIdleTimeout:                   timeout,
		// quic-go's 5 s default is too short on a loaded 2-core CI machine.
		HandshakeIdleTimeout: 20 * time.Second,
	}
	if os.Getenv("QLOGDIR") != "" {
		quicConf.Tracer = qlog.DefaultConnectionTracer
	}
	dialer := webtransport.Dialer{TLSClientConfig: tlsConf, QUICConfig: quicConf}
	defer dialer.Close()

	res.Step = "dial"
	rsp, sess, err := dialer.Dial(ctx, url, nil)
	if rsp != nil {
		res.Status = rsp.StatusCode
		res.ResponseHeaders = map[string]string{}
		for k, v := range rsp.Header {
			if len(v) > 0 {
				res.ResponseHeaders[k] = v[0]
			}
		}
	}
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}

	// Bidirectional stream: write, FIN, read the whole answer.
	res.Step = "bidi"
	str, err := sess.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open bidi stream: %w", err)
	}
	str.SetDeadline(time.Now().Add(timeout))
	if _, err := str.Write([]byte(message)); err != nil {
		return fmt.Errorf("write bidi stream: %w", err)
	}
	if err := str.Close(); err != nil {
		return fmt.Errorf("close bidi stream: %w", err)
	}
	echo, err := io.ReadAll(str)
	res.BidiEcho = string(echo)
	if err != nil {
		return fmt.Errorf("read bidi stream: %w", err)
	}

	// Unidirectional stream to the server; optionally the server answers on its own uni stream.
	res.Step = "uni"
	ustr, err := sess.OpenUniStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open uni stream: %w", err)
	}
	if _, err := ustr.Write([]byte(uniMessage)); err != nil {
		return fmt.Errorf("write uni stream: %w", err)
	}
	if err := ustr.Close(); err != nil {
		return fmt.Errorf("close uni stream: %w", err)
	}
	if waitUniReply {
		res.Step = "uni-reply"
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		rstr, err := sess.AcceptUniStream(actx)
		acancel()
		if err != nil {
			return fmt.Errorf("accept uni stream: %w", err)
		}
		rstr.SetReadDeadline(time.Now().Add(10 * time.Second))
		reply, err := io.ReadAll(rstr)
		res.UniReply = string(reply)
		if err != nil {
			return fmt.Errorf("read uni stream: %w", err)
		}
	}

	// Datagrams are unreliable: resend until an answer arrives.
	res.Step = "datagram"
	got := make(chan []byte, 1)
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	go func() {
		b, err := sess.ReceiveDatagram(dctx)
		if err == nil {
			got <- b
		}
		close(got)
	}()
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
datagrams:
	for {
		res.DatagramAttempts++
		if err := sess.SendDatagram([]byte(fmt.Sprintf("dgram-%d", res.DatagramAttempts))); err != nil {
			return fmt.Errorf("send datagram: %w", err)
		}
		select {
		case b, ok := <-got:
			if !ok {
				return errors.New("no datagram echo within 10s")
			}
			res.DatagramEcho = string(b)
			break datagrams
		case <-ticker.C:
		}
	}

	res.Step = "close"
	if err := sess.CloseWithError(webtransport.SessionErrorCode(res.CloseCode), res.CloseReason); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	res.Closed = true
	// Give the capsule time to leave before the deferred cleanup closes the QUIC
	// connection: the session ends once the server has FINed its CONNECT stream too.
	select {
	case <-sess.Context().Done():
	case <-time.After(2 * time.Second):
	}
	return nil
}
