package client

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
)

// BenchmarkRealtimeSubscriberMemory measures what one idle subscriber (a
// socket with one joined channel, as a browser tab has) costs this client,
// against a dollr serve in its own process so only client memory counts.
//
//	go test ./client -run X -bench SubscriberMemory -benchtime 1x
func BenchmarkRealtimeSubscriberMemory(b *testing.B) {
	const subscribers = 500
	srv := startServer(b)
	c, err := NewFromCredentials(srv.Creds)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src, err := c.CreateCheckout(ctx, CheckoutRequest{Mode: dollr.ModeDirect, SourceKind: dollr.SourceInvoice,
		PartyPhone: "231770000010", Currency: "USD", Items: []Item{{Name: "bench", Currency: "USD", Amount: 100}}})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := c.CreateCheckoutSession(ctx, CheckoutSessionRequest{SourceID: src.SourceID, SourceType: src.SourceType})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, subscribers)
	refs := make([]string, subscribers)
	for i := range keys {
		refs[i] = uuid.NewString()
		k, err := c.CreateRealtimeKey(ctx, RealtimeKeyRequest{SessionID: sess.ID, SourceType: sess.SourceType, ReferenceID: refs[i]})
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = k.AccessToken
	}
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]*RealtimeConn, subscribers)
		subscribed := make(chan ChannelStatus, subscribers)
		for i := range conns {
			conn, err := DialRealtime(ctx, srv.Creds.SupabaseURL, RealtimeOptions{APIKey: srv.Creds.SupabaseAnonKey})
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = conn
			_, err = conn.Join(fmt.Sprintf("payment-intent:%d:%s", sess.ID, refs[i]), ChannelOptions{
				AccessToken:     keys[i],
				PostgresChanges: []PostgresChangesFilter{{Event: "*", Schema: "public", Table: dollr.PublicStatusTable, Filter: "reference_id=eq." + refs[i]}},
				OnStatus:        func(s ChannelStatus, err error) { subscribed <- s },
				OnChange:        func(*PostgresChange) {},
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		for range conns {
			if s := <-subscribed; s != ChannelSubscribed {
				b.Fatalf("status %s", s)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perSub := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / subscribers
		b.ReportMetric(perSub, "B/subscriber")
		for _, conn := range conns {
			conn.Close()
			<-conn.Done()
		}
	}
}
