// Command wtbench is the webtransport-go (v0.12) benchmark peer for bench/peers_bench.py.
//
//	wtbench server --cert PEM --key PEM [--port 0]
//	wtbench client --url https://127.0.0.1:PORT/bench --scenario NAME [options]
//
// bench/peers/README.md describes the protocol and the scenarios; the Python and Rust
// peers implement exactly the same behaviour.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"
)

const (
	msgSize     = 64
	readBufSize = 64 << 10
	dgramWait   = 200 * time.Millisecond
	rateStall   = 100 * time.Millisecond
)

var outMx sync.Mutex

func emit(fields map[string]any) {
	b, err := json.Marshal(fields)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"error","detail":%q}`, err.Error()))
	}
	outMx.Lock()
	defer outMx.Unlock()
	os.Stdout.Write(append(b, '\n'))
}

func fail(err error) {
	emit(map[string]any{"event": "error", "detail": err.Error()})
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: wtbench server|client [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func quicConfig(idle, keepalive float64) *quic.Config {
	return &quic.Config{
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
		MaxIdleTimeout:                   time.Duration(idle * float64(time.Second)),
		KeepAlivePeriod:                  time.Duration(keepalive * float64(time.Second)),
	}
}

// ------------------------------------------------------------------------------------------
// server

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	certFile := fs.String("cert", "", "PEM certificate")
	keyFile := fs.String("key", "", "PEM private key")
	port := fs.Int("port", 0, "UDP port on 127.0.0.1")
	idle := fs.Float64("idle-timeout", 120, "QUIC idle timeout, seconds")
	keepalive := fs.Float64("keepalive", 20, "keep-alive interval, seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("load certificate: %w", err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *port})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	mux := http.NewServeMux()
	srv := &webtransport.Server{
		H3: &http3.Server{
			TLSConfig:  http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
			QUICConfig: quicConfig(*idle, *keepalive),
			Handler:    mux,
		},
		CheckOrigin: func(r *http.Request) bool { return true },
	}
	mux.HandleFunc("/bench", func(w http.ResponseWriter, r *http.Request) {
		sess, err := srv.Upgrade(w, r)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		serveSession(sess)
	})
	go func() { // exit when the driver closes our stdin
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	emit(map[string]any{"event": "listening", "port": udp.LocalAddr().(*net.UDPAddr).Port})
	return srv.Serve(udp)
}

func serveSession(sess *webtransport.Session) {
	ctx := sess.Context()
	go func() {
		for {
			b, err := sess.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			if sess.SendDatagram(b) != nil {
				return
			}
		}
	}()
	for {
		str, err := sess.AcceptStream(ctx)
		if err != nil {
			return
		}
		go serveStream(str)
	}
}

func serveStream(str *webtransport.Stream) {
	var mode [1]byte
	if _, err := io.ReadFull(str, mode[:]); err != nil {
		str.CancelWrite(1)
		return
	}
	buf := make([]byte, readBufSize)
	switch mode[0] {
	case 'U':
		var n uint64
		for {
			k, err := str.Read(buf)
			n += uint64(k)
			if err == io.EOF {
				break
			}
			if err != nil {
				str.CancelWrite(1)
				return
			}
		}
		var reply [8]byte
		binary.BigEndian.PutUint64(reply[:], n)
		str.Write(reply[:])
		str.Close()
	case 'D':
		var hdr [12]byte
		if _, err := io.ReadFull(str, hdr[:]); err != nil {
			str.CancelWrite(1)
			return
		}
		total := binary.BigEndian.Uint64(hdr[:8])
		chunk := uint64(binary.BigEndian.Uint32(hdr[8:]))
		data := bytes.Repeat([]byte{'d'}, int(chunk))
		for sent := uint64(0); sent < total; {
			w := min(chunk, total-sent)
			if _, err := str.Write(data[:w]); err != nil {
				return
			}
			sent += w
		}
		str.Close()
	case 'E':
		for {
			k, err := str.Read(buf)
			if k > 0 {
				if _, werr := str.Write(buf[:k]); werr != nil {
					return
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				str.CancelWrite(1)
				return
			}
		}
		str.Close()
	default:
		str.CancelRead(1)
		str.CancelWrite(1)
	}
}

// ------------------------------------------------------------------------------------------
// client

type opts struct {
	url, scenario                                string
	size, chunk, warmupSize                      int64
	rounds, warmup, inflight                     int
	sessions, requests, concurrency              int
	duration, timeout, rampDeadline, holdTimeout float64
	idle, keepalive                              float64
}

var stdin = bufio.NewReader(os.Stdin)

// ready tells the driver the timed part is about to start and waits for its go-ahead.
func ready() error {
	emit(map[string]any{"event": "ready"})
	_, err := stdin.ReadString('\n')
	return err
}

// report prints the result, then waits (bounded) for the driver's release line before the
// caller cleans up, so that the driver samples CPU and RSS with nothing else going on.
func (o *opts) report(res map[string]any) {
	res["event"] = "result"
	emit(res)
	released := make(chan struct{})
	go func() { stdin.ReadString('\n'); close(released) }()
	select {
	case <-released:
	case <-time.After(seconds(o.holdTimeout)):
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func (o *opts) transport() *webtransport.Transport {
	return &webtransport.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		QUICConfig:      quicConfig(o.idle, o.keepalive),
	}
}

func (o *opts) dial(tr *webtransport.Transport) (*webtransport.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), seconds(o.timeout))
	defer cancel()
	rsp, sess, err := tr.Dial(ctx, o.url, nil)
	if err != nil {
		return nil, err
	}
	if rsp.StatusCode != http.StatusOK {
		sess.CloseWithError(0, "")
		return nil, fmt.Errorf("CONNECT answered %d", rsp.StatusCode)
	}
	return sess, nil
}

func runClient(args []string) error {
	o := &opts{}
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "", "https://127.0.0.1:PORT/bench")
	fs.StringVar(&o.scenario, "scenario", "", "scenario name")
	fs.Int64Var(&o.size, "size", 64<<20, "bytes")
	fs.Int64Var(&o.chunk, "chunk", 64<<10, "bytes per write")
	fs.Int64Var(&o.warmupSize, "warmup-size", 4<<20, "warm-up bytes")
	fs.IntVar(&o.rounds, "rounds", 1000, "timed rounds")
	fs.IntVar(&o.warmup, "warmup", 100, "warm-up rounds")
	fs.IntVar(&o.inflight, "inflight", 32, "datagrams in flight")
	fs.IntVar(&o.sessions, "sessions", 100, "sessions")
	fs.IntVar(&o.requests, "requests", 20, "requests per session")
	fs.IntVar(&o.concurrency, "concurrency", 32, "connects in flight")
	fs.Float64Var(&o.duration, "duration", 8, "seconds")
	fs.Float64Var(&o.timeout, "timeout", 10, "connect timeout, seconds")
	fs.Float64Var(&o.rampDeadline, "ramp-deadline", 120, "no new connects after this many seconds")
	fs.Float64Var(&o.holdTimeout, "hold-timeout", 300, "longest wait for the release line")
	fs.Float64Var(&o.idle, "idle-timeout", 120, "QUIC idle timeout, seconds")
	fs.Float64Var(&o.keepalive, "keepalive", 20, "keep-alive interval, seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	switch o.scenario {
	case "upload":
		err = o.upload()
	case "download":
		err = o.download()
	case "echo":
		err = o.echo()
	case "stream_echo":
		err = o.streamEcho()
	case "dgram":
		err = o.dgram()
	case "dgram_rate":
		err = o.dgramRate()
	case "setup":
		err = o.setup()
	case "concurrent":
		err = o.concurrent()
	case "idle":
		return o.idleSessions()
	default:
		err = fmt.Errorf("unknown scenario %q", o.scenario)
	}
	if err != nil {
		return err
	}
	emit(map[string]any{"event": "done"})
	// quic-go sends CONNECTION_CLOSE from its own goroutine: give it a moment.
	time.Sleep(50 * time.Millisecond)
	return nil
}

// withSession dials one session, runs fn, reports its result, closes the session.
func (o *opts) withSession(fn func(*webtransport.Session) (map[string]any, error)) error {
	tr := o.transport()
	defer tr.Close()
	sess, err := o.dial(tr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer sess.CloseWithError(0, "")
	res, err := fn(sess)
	if err != nil {
		return err
	}
	o.report(res)
	return nil
}

func doUpload(sess *webtransport.Session, size, chunk int64) (uint64, error) {
	str, err := sess.OpenStreamSync(sess.Context())
	if err != nil {
		return 0, err
	}
	if _, err := str.Write([]byte{'U'}); err != nil {
		return 0, err
	}
	data := bytes.Repeat([]byte{'u'}, int(chunk))
	for sent := int64(0); sent < size; {
		w := min(chunk, size-sent)
		if _, err := str.Write(data[:w]); err != nil {
			return 0, err
		}
		sent += w
	}
	if err := str.Close(); err != nil {
		return 0, err
	}
	reply, err := io.ReadAll(str)
	if err != nil {
		return 0, err
	}
	if len(reply) != 8 {
		return 0, fmt.Errorf("upload reply of %d bytes", len(reply))
	}
	return binary.BigEndian.Uint64(reply), nil
}

func (o *opts) upload() error {
	return o.withSession(func(sess *webtransport.Session) (map[string]any, error) {
		if o.warmupSize > 0 {
			if _, err := doUpload(sess, o.warmupSize, o.chunk); err != nil {
				return nil, err
			}
		}
		if err := ready(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		n, err := doUpload(sess, o.size, o.chunk)
		el := time.Since(t0)
		if err != nil {
			return nil, err
		}
		return map[string]any{"bytes": o.size, "seconds": el.Seconds(), "reply": n}, nil
	})
}

func doDownload(sess *webtransport.Session, size, chunk int64) (int64, error) {
	str, err := sess.OpenStreamSync(sess.Context())
	if err != nil {
		return 0, err
	}
	var req [13]byte
	req[0] = 'D'
	binary.BigEndian.PutUint64(req[1:9], uint64(size))
	binary.BigEndian.PutUint32(req[9:], uint32(chunk))
	if _, err := str.Write(req[:]); err != nil {
		return 0, err
	}
	if err := str.Close(); err != nil {
		return 0, err
	}
	buf := make([]byte, readBufSize)
	var n int64
	for {
		k, err := str.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (o *opts) download() error {
	return o.withSession(func(sess *webtransport.Session) (map[string]any, error) {
		if o.warmupSize > 0 {
			if _, err := doDownload(sess, o.warmupSize, o.chunk); err != nil {
				return nil, err
			}
		}
		if err := ready(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		n, err := doDownload(sess, o.size, o.chunk)
		el := time.Since(t0)
		if err != nil {
			return nil, err
		}
		return map[string]any{"bytes": n, "seconds": el.Seconds()}, nil
	})
}

func message(i int) []byte {
	m := bytes.Repeat([]byte{'e'}, msgSize)
	binary.BigEndian.PutUint64(m, uint64(i))
	return m
}

func (o *opts) echo() error {
	return o.withSession(func(sess *webtransport.Session) (map[string]any, error) {
		str, err := sess.OpenStreamSync(sess.Context())
		if err != nil {
			return nil, err
		}
		if _, err := str.Write([]byte{'E'}); err != nil {
			return nil, err
		}
		got := make([]byte, msgSize)
		samples := make([]int64, 0, o.rounds)
		mismatches := 0
		for i := 0; i < o.warmup+o.rounds; i++ {
			if i == o.warmup {
				if err := ready(); err != nil {
					return nil, err
				}
			}
			msg := message(i)
			t0 := time.Now()
			if _, err := str.Write(msg); err != nil {
				return nil, err
			}
			if _, err := io.ReadFull(str, got); err != nil {
				return nil, err
			}
			el := time.Since(t0)
			if i >= o.warmup {
				samples = append(samples, el.Nanoseconds())
			}
			if !bytes.Equal(got, msg) {
				mismatches++
			}
		}
		str.Close()
		io.Copy(io.Discard, str)
		return map[string]any{"samples_ns": samples, "mismatches": mismatches}, nil
	})
}

func requestEcho(sess *webtransport.Session, msg []byte) ([]byte, error) {
	str, err := sess.OpenStreamSync(sess.Context())
	if err != nil {
		return nil, err
	}
	req := append([]byte{'E'}, msg...)
	if _, err := str.Write(req); err != nil {
		return nil, err
	}
	if err := str.Close(); err != nil {
		return nil, err
	}
	return io.ReadAll(str)
}

func (o *opts) streamEcho() error {
	return o.withSession(func(sess *webtransport.Session) (map[string]any, error) {
		samples := make([]int64, 0, o.rounds)
		mismatches := 0
		for i := 0; i < o.warmup+o.rounds; i++ {
			if i == o.warmup {
				if err := ready(); err != nil {
					return nil, err
				}
			}
			msg := message(i)
			t0 := time.Now()
			got, err := requestEcho(sess, msg)
			el := time.Since(t0)
			if err != nil {
				return nil, err
			}
			if i >= o.warmup {
				samples = append(samples, el.Nanoseconds())
			}
			if !bytes.Equal(got, msg) {
				mismatches++
			}
		}
		return map[string]any{"samples_ns": samples, "mismatches": mismatches}, nil
	})
}

func datagram(seq uint64) []byte {
	d := bytes.Repeat([]byte{'x'}, msgSize)
	binary.BigEndian.PutUint64(d, seq)
	return d
}

// pingDatagram sends seq and waits for its echo, resending after dgramWait (clock restarted).
func pingDatagram(sess *webtransport.Session, seq uint64) (time.Duration, int, error) {
	pkt := datagram(seq)
	retries := 0
	for {
		t0 := time.Now()
		if err := sess.SendDatagram(pkt); err != nil {
			return 0, retries, err
		}
		ctx, cancel := context.WithTimeout(sess.Context(), dgramWait)
		for {
			d, err := sess.ReceiveDatagram(ctx)
			if err != nil {
				break
			}
			if len(d) == msgSize && binary.BigEndian.Uint64(d) == seq {
				el := time.Since(t0)
				cancel()
				return el, retries, nil
			}
		}
		cancel()
		if sess.Context().Err() != nil {
			return 0, retries, context.Cause(sess.Context())
		}
		retries++
		if retries > 50 {
			return 0, retries, fmt.Errorf("datagram %d: no echo after %d tries", seq, retries)
		}
	}
}

func (o *opts) dgram() error {
	return o.withSession(func(sess *webtransport.Session) (map[string]any, error) {
		samples := make([]int64, 0, o.rounds)
		retries := 0
		for i := 0; i < o.warmup+o.rounds; i++ {
			if i == o.warmup {
				if err := ready(); err != nil {
					return nil, err
				}
			}
			el, r, err := pingDatagram(sess, uint64(i))
			if err != nil {
				return nil, err
			}
			if i >= o.warmup {
				samples = append(samples, el.Nanoseconds())
				retries += r
			}
		}
		return map[string]any{"samples_ns": samples, "retries": retries}, nil
	})
}

func (o *opts) dgramRate() error {
	return o.withSession(func(sess *webtransport.Session) (map[string]any, error) {
		for i := 0; i < o.warmup; i++ {
			if _, _, err := pingDatagram(sess, uint64(i)); err != nil {
				return nil, err
			}
		}
		if err := ready(); err != nil {
			return nil, err
		}
		seq := uint64(1 << 32)
		inflight, sent, received, stalls := 0, 0, 0, 0
		t0 := time.Now()
		deadline := t0.Add(seconds(o.duration))
		for time.Now().Before(deadline) {
			for inflight < o.inflight {
				if err := sess.SendDatagram(datagram(seq)); err != nil {
					return nil, err
				}
				seq++
				sent++
				inflight++
			}
			ctx, cancel := context.WithTimeout(sess.Context(), rateStall)
			_, err := sess.ReceiveDatagram(ctx)
			cancel()
			if err != nil {
				if sess.Context().Err() != nil {
					return nil, context.Cause(sess.Context())
				}
				stalls++
				inflight = 0
				continue
			}
			received++
			if inflight > 0 {
				inflight--
			}
		}
		el := time.Since(t0)
		late := 0
		for {
			ctx, cancel := context.WithTimeout(sess.Context(), dgramWait)
			_, err := sess.ReceiveDatagram(ctx)
			cancel()
			if err != nil {
				break
			}
			late++
		}
		return map[string]any{"sent": sent, "received": received, "late": late, "stalls": stalls,
			"seconds": el.Seconds()}, nil
	})
}

func (o *opts) setup() error {
	tr := o.transport() // one client; webtransport-go dials a new QUIC connection per session
	defer tr.Close()
	samples := make([]int64, 0, o.rounds)
	errs := 0
	var firstErr string
	for i := 0; i < o.warmup+o.rounds; i++ {
		if i == o.warmup {
			if err := ready(); err != nil {
				return err
			}
		}
		t0 := time.Now()
		sess, err := o.dial(tr)
		el := time.Since(t0)
		if err != nil {
			errs++
			if firstErr == "" {
				firstErr = err.Error()
			}
			continue
		}
		if i >= o.warmup {
			samples = append(samples, el.Nanoseconds())
		}
		sess.CloseWithError(0, "") // closes its QUIC connection too
	}
	o.report(map[string]any{"samples_ns": samples, "errors": errs, "first_error": firstErr})
	return nil
}

func (o *opts) concurrent() error {
	tr := o.transport()
	defer tr.Close()
	// warm-up: one session doing the per-session work
	{
		sess, err := o.dial(tr)
		if err != nil {
			return fmt.Errorf("warm-up connect: %w", err)
		}
		for j := 0; j < o.requests; j++ {
			if _, err := requestEcho(sess, message(j)); err != nil {
				return err
			}
		}
		sess.CloseWithError(0, "")
	}
	if err := ready(); err != nil {
		return err
	}
	sessions := make([]*webtransport.Session, o.sessions)
	var mx sync.Mutex
	errs := 0
	var firstErr string
	note := func(err error) {
		mx.Lock()
		defer mx.Unlock()
		errs++
		if firstErr == "" {
			firstErr = err.Error()
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := o.dial(tr)
			if err != nil {
				note(err)
				return
			}
			sessions[i] = sess
		}()
	}
	wg.Wait()
	t1 := time.Now()
	done := 0
	for i, sess := range sessions {
		if sess == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < o.requests; j++ {
				msg := message(i*o.requests + j)
				got, err := requestEcho(sess, msg)
				if err == nil && !bytes.Equal(got, msg) {
					err = errors.New("echo mismatch")
				}
				if err != nil {
					note(err)
					return
				}
				mx.Lock()
				done++
				mx.Unlock()
			}
		}()
	}
	wg.Wait()
	t2 := time.Now()
	o.report(map[string]any{"sessions": o.sessions, "requests": done, "errors": errs, "first_error": firstErr,
		"connect_seconds": t1.Sub(t0).Seconds(), "echo_seconds": t2.Sub(t1).Seconds(),
		"seconds": t2.Sub(t0).Seconds()})
	for _, sess := range sessions {
		if sess != nil {
			sess.CloseWithError(0, "")
		}
	}
	return nil
}

func (o *opts) idleSessions() error {
	tr := o.transport()
	if err := ready(); err != nil {
		return err
	}
	var mx sync.Mutex
	sessions := make([]*webtransport.Session, 0, o.sessions)
	errs := 0
	samples := map[string]bool{}
	sem := make(chan struct{}, o.concurrency)
	var wg sync.WaitGroup
	t0 := time.Now()
	rampEnd := t0.Add(seconds(o.rampDeadline))
	attempted := 0
	for i := 0; i < o.sessions && time.Now().Before(rampEnd); i++ {
		sem <- struct{}{}
		attempted++
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sess, err := o.dial(tr)
			mx.Lock()
			defer mx.Unlock()
			if err != nil {
				errs++
				if len(samples) < 3 {
					samples[err.Error()] = true
				}
				return
			}
			sessions = append(sessions, sess)
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	errSamples := []string{}
	for s := range samples {
		errSamples = append(errSamples, s)
	}
	o.report(map[string]any{"attempted": attempted, "established": len(sessions),
		"errors": errs + (o.sessions - attempted), "error_samples": errSamples, "seconds": el.Seconds()})
	for _, sess := range sessions {
		sess.CloseWithError(0, "")
	}
	tr.Close()
	emit(map[string]any{"event": "done"})
	time.Sleep(50 * time.Millisecond)
	return nil
}
