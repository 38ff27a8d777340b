package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/irxfed/irx/formats/iodef"
	irxv1 "github.com/irxfed/irx/proto/irx/v1"
	"github.com/irxfed/irx/test/irxdtest"
)

// runIODEF measures the server-side conversion on a one-node team: the
// import of -docs IODEF documents of one incident each through
// ImportIncidents by -clients concurrent clients, then the export of all
// the records they made through ExportIncidents, page after page, in XML
// and in RFC 8727 JSON.
//
//	go run ./test/bench iodef -docs 10000
func runIODEF(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("iodef", flag.ContinueOnError)
	var (
		docs     = fs.Int("docs", 10000, "IODEF documents to import, one incident each")
		clients  = fs.Int("clients", 256, "concurrent ImportIncidents calls")
		pageSize = fs.Int("page-size", 1000, "ExportIncidents page_size")
		keep     = fs.Bool("keep", false, "keep the data directory of the started node")
		prebuilt = fs.String("irxd", "", "use this irxd binary instead of building ./cmd/irxd")
		pprof    = fs.Int("pprof-port", 0, "serve the node's pprof profiles on 127.0.0.1:PORT")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *docs < 1 || *clients < 1 {
		return errors.New("-docs and -clients must be positive")
	}
	documents, err := iodefDocuments(*docs)
	if err != nil {
		return err
	}
	var total int
	for _, d := range documents {
		total += len(d)
	}
	dir, bin, cleanup, err := workDir(ctx, "irx-bench-iodef", *keep, *prebuilt)
	if err != nil {
		return err
	}
	defer cleanup()
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	team, err := irxdtest.LaunchClusterEach(startCtx, bin, dir, 1, nodeSetup(*pprof, 0, 0))
	cancel()
	defer stopAll(team, 10*time.Second)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(team[0].APIAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := irxv1.NewIncidentServiceClient(conn)
	fmt.Fprintf(out, "iodef: a one-node team; %d IODEF v2 documents of one incident each, %d bytes on average; %d clients; %s\n",
		*docs, total / *docs, *clients, loadAverage())

	// Import.
	var (
		next      atomic.Int64
		failures  atomic.Int64
		lastErr   atomic.Value
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, *docs)
		wg        sync.WaitGroup
	)
	meter := startCPU(team)
	start := time.Now()
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := int(next.Add(1)) - 1; i < len(documents); i = int(next.Add(1)) - 1 {
				callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
				t0 := time.Now()
				resp, err := c.ImportIncidents(callCtx, &irxv1.ImportIncidentsRequest{
					Document: documents[i], Format: irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML,
				})
				local = append(local, time.Since(t0))
				cancel()
				switch {
				case err != nil:
					failures.Add(1)
					lastErr.Store(err.Error())
				case len(resp.GetResults()) != 1 || resp.GetResults()[0].GetErrorCode() != "":
					failures.Add(1)
					lastErr.Store(fmt.Sprint(resp.GetResults()))
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	meter.stop()
	if n := failures.Load(); n > 0 {
		return fmt.Errorf("%d imports failed; the last: %v", n, lastErr.Load())
	}
	slices.Sort(latencies)
	fmt.Fprintf(out, "import: %d documents in %.2fs: %.0f documents/s, latency p50 %v p99 %v\n",
		*docs, elapsed.Seconds(), float64(*docs)/elapsed.Seconds(),
		latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)*99/100].Round(time.Microsecond))
	fmt.Fprintln(out, "  "+meter.report(*docs, "document"))

	// Export, in both bindings.
	for _, format := range []irxv1.DocumentFormat{irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_XML, irxv1.DocumentFormat_DOCUMENT_FORMAT_IODEF_V2_JSON} {
		meter := startCPU(team)
		start := time.Now()
		records, pages, size := 0, 0, 0
		token := ""
		for {
			resp, err := c.ExportIncidents(ctx, &irxv1.ExportIncidentsRequest{Format: format, PageSize: int32(*pageSize), PageToken: token})
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			records += len(resp.GetIds())
			size += len(resp.GetDocument())
			pages++
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		elapsed := time.Since(start)
		meter.stop()
		if records != *docs {
			return fmt.Errorf("export %v: %d records, want %d", format, records, *docs)
		}
		fmt.Fprintf(out, "export %s: %d records in %d documents (%.1f MiB) in %.2fs: %.0f records/s\n",
			format, records, pages, float64(size)/(1<<20), elapsed.Seconds(), float64(records)/elapsed.Seconds())
		fmt.Fprintln(out, "  "+meter.report(records, "record"))
	}
	return nil
}

// iodefDocuments makes n IODEF documents of one incident each, alike but
// for their ids, addresses and text: a report of SSH password guessing
// with its attacker, victim, indicator and reporter, as a partner's tool
// would send.
func iodefDocuments(n int) ([][]byte, error) {
	out := make([][]byte, n)
	gen := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		inc := &irxv1.Incident{
			Id:             fmt.Sprintf("csirt-example:%d", 100000+i),
			Tlp:            irxv1.Tlp_TLP_GREEN,
			Restriction:    irxv1.Restriction_RESTRICTION_PARTNER,
			Taxonomy:       &irxv1.Taxonomy{Class: "intrusion-attempts", Type: "brute-force"},
			ReportTime:     timestamppb.New(gen.Add(-time.Duration(i) * time.Second)),
			GenerationTime: timestamppb.New(gen),
			Descriptions:   []*irxv1.Description{{Lang: "en", Text: fmt.Sprintf("SSH password guessing against the mail relay, report %d", i)}},
			Contacts: []*irxv1.Contact{{Role: irxv1.ContactRole_CONTACT_ROLE_CREATOR, Type: irxv1.ContactType_CONTACT_TYPE_ORGANIZATION,
				Organization: "Example CSIRT", Email: "contact@csirt.example.com"}},
			VictimHosts:    []*irxv1.Host{{Hostname: "mail.example.org", Addresses: []string{"192.0.2.25"}}},
			AttackingHosts: []*irxv1.Host{{Addresses: []string{fmt.Sprintf("198.51.%d.%d", 100+i/254%10, 1+i%254)}, Services: []*irxv1.Service{{IpProtocol: 6, Port: 22}}}},
			Indicators:     []*irxv1.Indicator{{Kind: irxv1.IndicatorKind_INDICATOR_KIND_IPV4, Value: fmt.Sprintf("198.51.%d.%d", 100+i/254%10, 1+i%254)}},
		}
		var b bytes.Buffer
		if err := iodef.Encode(&b, []*irxv1.Incident{inc}, iodef.EncodeOptions{Team: "csirt.example.com"}); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out[i] = b.Bytes()
	}
	return out, nil
}

// loadAverage is the machine's one-minute load average, which the figures
// of a shared machine need beside them.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return "load average unknown"
	}
	return "load average " + f[0]
}
