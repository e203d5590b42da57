// Command wtserver is a minimal webtransport-go (v0.12.x, draft-16) server used by the
// pywebtransport interop tests. It listens on 127.0.0.1, prints one JSON line per event
// on stdout ({"event":"listening","port":N} first), echoes bidirectional streams and
// datagrams with an "ECHO: " prefix, answers a unidirectional stream with a "UNI: "
// stream, and reports the WT_CLOSE_SESSION code and reason it receives.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/http3/qlog"
	"github.com/quic-go/webtransport-go"
)

var outMx sync.Mutex

func emit(fields map[string]any) {
	b, err := json.Marshal(fields)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"marshal-error","error":%q}`, err.Error()))
	}
	outMx.Lock()
	defer outMx.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func main() {
	certFile := flag.String("cert", "", "PEM certificate (chain)")
	keyFile := flag.String("key", "", "PEM private key")
	port := flag.Int("port", 0, "UDP port on 127.0.0.1 (0 = pick one)")
	maxStreams := flag.Int64("max-streams", 0, "WT flow control: bidi streams a client may open (0 = off)")
	maxUniStreams := flag.Int64("max-uni-streams", 0, "WT flow control: uni streams a client may open (0 = off)")
	maxData := flag.Int64("max-data", 0, "WT flow control: bytes a client may send (0 = off)")
	flag.Parse()

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("load certificate: %v", err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *port})
	if err != nil {
		log.Fatalf("listen: %v", err)
	}

	quicConf := &quic.Config{
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
		MaxIdleTimeout:                   60 * time.Second,
	}
	if os.Getenv("QLOGDIR") != "" {
		quicConf.Tracer = qlog.DefaultConnectionTracer
	}

	mux := http.NewServeMux()
	srv := &webtransport.Server{
		H3: &http3.Server{
			TLSConfig:  http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
			QUICConfig: quicConf,
			Handler:    mux,
		},
		// Accept any origin but report it, so tests can see what the client sent.
		CheckOrigin: func(r *http.Request) bool { return true },
		Config:      &webtransport.Config{MaxIncomingStreams: *maxStreams, MaxIncomingUniStreams: *maxUniStreams, MaxIncomingData: *maxData},
	}
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		sess, err := srv.Upgrade(w, r)
		if err != nil {
			emit(map[string]any{"event": "upgrade-error", "error": err.Error(), "proto": r.Proto})
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		emit(map[string]any{
			"event":     "session",
			"path":      r.URL.Path,
			"proto":     r.Proto,
			"authority": r.Host,
			"origin":    r.Header.Get("Origin"),
		})
		serveSession(sess)
	})

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Close()
		os.Exit(0)
	}()

	emit(map[string]any{"event": "listening", "port": udp.LocalAddr().(*net.UDPAddr).Port})
	if err := srv.Serve(udp); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
		emit(map[string]any{"event": "serve-error", "error": err.Error()})
		os.Exit(1)
	}
}

func serveSession(sess *webtransport.Session) {
	ctx := sess.Context()

	go func() { // datagram echo
		for {
			b, err := sess.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			emit(map[string]any{"event": "datagram", "data": string(b)})
			if err := sess.SendDatagram(append([]byte("ECHO: "), b...)); err != nil {
				emit(map[string]any{"event": "datagram-send-error", "error": err.Error()})
			}
		}
	}()

	go func() { // uni streams: report, answer on a new uni stream
		for {
			rstr, err := sess.AcceptUniStream(ctx)
			if err != nil {
				return
			}
			go func() {
				rstr.SetReadDeadline(time.Now().Add(30 * time.Second))
				data, err := io.ReadAll(rstr)
				if err != nil {
					emit(map[string]any{"event": "uni-error", "error": err.Error()})
					return
				}
				emit(map[string]any{"event": "uni", "data": string(data)})
				out, err := sess.OpenUniStreamSync(ctx)
				if err != nil {
					return
				}
				out.Write(append([]byte("UNI: "), data...))
				out.Close()
			}()
		}
	}()

	// Bidi streams: echo. AcceptStream fails once the session is over; its error says why.
	for {
		str, err := sess.AcceptStream(context.Background())
		if err != nil {
			ev := map[string]any{"event": "session_closed", "error": err.Error()}
			var sessErr *webtransport.SessionError
			if errors.As(err, &sessErr) {
				ev["code"] = sessErr.ErrorCode
				ev["reason"] = sessErr.Message
				ev["remote"] = sessErr.Remote
			}
			emit(ev)
			return
		}
		go func() {
			str.SetDeadline(time.Now().Add(30 * time.Second))
			data, err := io.ReadAll(str)
			if err != nil {
				ev := map[string]any{"event": "bidi-error", "error": err.Error()}
				var se *webtransport.StreamError
				if errors.As(err, &se) {
					ev["code"] = se.ErrorCode // a client reset, mapped back to its WebTransport code
				}
				emit(ev)
				str.CancelWrite(1)
				return
			}
			if string(data) == "please-reset" { // the client wants to see our reset code
				str.CancelWrite(99)
				emit(map[string]any{"event": "reset-sent", "code": 99})
				return
			}
			emit(map[string]any{"event": "bidi", "bytes": len(data)})
			str.Write(append([]byte("ECHO: "), data...))
			str.Close()
		}()
	}
}
