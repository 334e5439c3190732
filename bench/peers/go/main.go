// franz-go as a benchmark peer: the workloads of `cafe bench produce|consume`,
// printing the JSON line bench/harness.py parses from every driver.
//
//	franz_peer produce -b HOST:PORT -t T -n 1000000 --record-size 100 [--throughput R]
//	franz_peer consume -b HOST:PORT -t T -n 1000000 [-g GROUP]
//
// The harness builds it (bench/peers/build.sh) from this module; go.sum pins the
// franz-go version. Latency: one record in --sample-every is timed from just before
// Produce (the hand-over, where every driver starts the clock) to its promise.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type opts struct {
	bootstrap, topic, group, acks, compression string
	n                                          int64
	recordSize, lingerMs, batchSize, every     int
	throughput                                 float64
	idleTimeout                                time.Duration
}

func cpuSeconds() float64 {
	var r syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return float64(r.Utime.Sec+r.Stime.Sec) + float64(r.Utime.Usec+r.Stime.Usec)/1e6
}

func franzVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				return d.Version
			}
		}
	}
	return "?"
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "franz_peer: "+format+"\n", a...)
	os.Exit(1)
}

// percentileMs: nearest rank, index round((len-1)*q), as cafe and the other peers.
func percentileMs(sorted []time.Duration, q float64) any {
	if len(sorted) == 0 {
		return nil
	}
	return float64(sorted[int(float64(len(sorted)-1)*q+0.5)].Microseconds()) / 1000
}

func report(o *opts, mode string, records, bytes int64, elapsed time.Duration, cpu float64, extra map[string]any) {
	s := elapsed.Seconds()
	out := map[string]any{
		"client": "franz-go", "franz_go": franzVersion(), "mode": mode, "topic": o.topic,
		"records": records, "bytes": bytes, "elapsed_s": s, "records_per_s": float64(records) / s,
		"mib_per_s": float64(bytes) / s / 1048576, "cpu_s": cpu,
	}
	for k, v := range extra {
		out[k] = v
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

func produce(o *opts) int {
	acks := kgo.LeaderAck()
	switch o.acks {
	case "0":
		acks = kgo.NoAck()
	case "all", "-1":
		acks = kgo.AllISRAcks()
	}
	codec := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}[o.compression]
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.bootstrap),
		kgo.ClientID("bench-franz-go"),
		kgo.DefaultProduceTopic(o.topic),
		kgo.RequiredAcks(acks),
		// acks=1 needs idempotence off in franz-go (as in Java); it also allows 5 in flight.
		kgo.DisableIdempotentWrite(),
		kgo.MaxProduceRequestsInflightPerBroker(5),
		kgo.ProducerBatchMaxBytes(int32(o.batchSize)),
		kgo.ProducerLinger(time.Duration(o.lingerMs)*time.Millisecond),
		kgo.ProducerBatchCompression(codec),
	)
	if err != nil {
		die("client: %v", err)
	}
	defer cl.Close()
	ctx := context.Background()
	// Connect and load the topic's metadata before the clock starts, as the others do.
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(o.topic)
	req.Topics = append(req.Topics, t)
	if _, err := req.RequestWith(ctx, cl); err != nil {
		die("metadata: %v", err)
	}

	value := make([]byte, o.recordSize)
	for i := range value {
		value[i] = byte('A' + i%26)
	}
	// Promises run serially on one goroutine (franz-go's contract), so no locks.
	var delivered, failed int64
	var firstErr error
	lat := make([]time.Duration, 0, o.n/int64(o.every)+1)
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			if failed == 0 {
				firstErr = err
			}
			failed++
		} else {
			delivered++
		}
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	for i := int64(0); i < o.n; i++ {
		if o.throughput > 0 {
			// Like the Java tool's throttler: sleep when more than 1 ms ahead of schedule.
			due := start.Add(time.Duration(float64(i) / o.throughput * 1e9))
			if ahead := time.Until(due); ahead > time.Millisecond {
				time.Sleep(ahead)
			}
		}
		r := &kgo.Record{Value: value}
		if i%int64(o.every) == 0 {
			sent := time.Now()
			cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				lat = append(lat, time.Since(sent))
				done(r, err)
			})
		} else {
			cl.Produce(ctx, r, done)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		die("flush: %v", err)
	}
	elapsed := time.Since(start)
	cpu := cpuSeconds() - cpu0
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	report(o, "produce", delivered, delivered*int64(o.recordSize), elapsed, cpu, map[string]any{
		"failed": failed, "p50_ms": percentileMs(lat, 0.50), "p99_ms": percentileMs(lat, 0.99),
		"p999_ms": percentileMs(lat, 0.999), "max_ms": percentileMs(lat, 1),
	})
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "franz_peer: %d records failed; first error: %v\n", failed, firstErr)
		return 5
	}
	return 0
}

func consume(o *opts) int {
	cpu0 := cpuSeconds()
	start := time.Now() // before connecting: the group join is included
	group := o.group
	if group == "" {
		group = fmt.Sprintf("bench-franz-%d-%d", os.Getpid(), start.UnixMilli())
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.bootstrap),
		kgo.ClientID("bench-franz-go"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The range assignor, as the other consumers here (franz-go's default is cooperative-sticky).
		kgo.Balancers(kgo.RangeBalancer()),
	)
	if err != nil {
		die("client: %v", err)
	}
	var count, bytes int64
	var first time.Duration = -1
	idle := time.Now().Add(o.idleTimeout)
	for count < o.n {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded {
				fmt.Fprintf(os.Stderr, "franz_peer: fetch %s/%d: %v\n", t, p, err)
			}
		})
		got := 0
		fs.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Key) + len(r.Value))
		})
		if got == 0 {
			if time.Now().After(idle) {
				fmt.Fprintf(os.Stderr, "franz_peer: stalled after %d of %d records\n", count, o.n)
				break
			}
			continue
		}
		if first < 0 {
			first = time.Since(start)
		}
		count += int64(got)
		idle = time.Now().Add(o.idleTimeout)
	}
	elapsed := time.Since(start)
	cpu := cpuSeconds() - cpu0
	cl.Close() // commits and leaves the group
	extra := map[string]any{}
	if first >= 0 {
		extra["first_record_ms"] = float64(first.Microseconds()) / 1000
		extra["fetch_records_per_s"] = float64(count) / max((elapsed-first).Seconds(), 1e-9)
	}
	report(o, "consume", count, bytes, elapsed, cpu, extra)
	if count < o.n {
		return 1
	}
	return 0
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "produce" && os.Args[1] != "consume") {
		die("usage: franz_peer produce|consume -t TOPIC [-b HOST:PORT] [-n N] ...")
	}
	o := &opts{}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	fs.StringVar(&o.bootstrap, "b", "127.0.0.1:9092", "bootstrap broker")
	fs.StringVar(&o.topic, "t", "", "topic")
	fs.StringVar(&o.group, "g", "", "group (default: a new one)")
	fs.Int64Var(&o.n, "n", 1_000_000, "records")
	fs.IntVar(&o.recordSize, "record-size", 100, "value bytes")
	fs.StringVar(&o.acks, "acks", "1", "acks: 0, 1, all")
	fs.IntVar(&o.lingerMs, "linger-ms", 5, "linger.ms")
	fs.IntVar(&o.batchSize, "batch-size", 16384, "batch.size")
	fs.StringVar(&o.compression, "compression", "none", "none, gzip, snappy, lz4, zstd")
	fs.Float64Var(&o.throughput, "throughput", 0, "records/s cap (0: none)")
	fs.IntVar(&o.every, "sample-every", 8, "time one record in this many")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 30*time.Second, "give up after this long without a record")
	_ = fs.Parse(os.Args[2:])
	if o.topic == "" || o.n < 1 || o.every < 1 {
		die("-t TOPIC is required; -n and --sample-every must be >= 1")
	}
	if os.Args[1] == "produce" {
		os.Exit(produce(o))
	}
	os.Exit(consume(o))
}
