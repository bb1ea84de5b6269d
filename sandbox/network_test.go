package sandbox

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
)

func TestPlanMobileMoney(t *testing.T) {
	n := &Network{Delay: 3 * time.Second, LongDelay: 3 * time.Minute}
	now := time.Unix(1_800_000_000, 0).UTC()
	type hop struct {
		to  dollr.ExecutionStatus
		at  time.Duration
		msg string
	}
	cases := []struct {
		phone   string
		status  dollr.ExecutionStatus
		message string
		hops    []hop
	}{
		{"231770000010", dollr.StatusPending, "", []hop{{dollr.StatusProcessing, AcceptDelay, MsgAwaitingApproval}, {dollr.StatusCompleted, 3 * time.Second, MsgCompleted}}},
		{"231770000001", dollr.StatusPending, "", []hop{{dollr.StatusProcessing, AcceptDelay, MsgAwaitingApproval}, {dollr.StatusFailed, 3 * time.Second, MsgInsufficient}}},
		{"231770000002", dollr.StatusPending, "", []hop{{dollr.StatusProcessing, AcceptDelay, MsgAwaitingApproval}, {dollr.StatusCompleted, 3 * time.Minute, MsgCompleted}}},
		{"231770000003", dollr.StatusFailed, MsgInvalidAccount, nil},
		{"231770000004", dollr.StatusPending, "", []hop{{dollr.StatusProcessing, AcceptDelay, MsgAwaitingApproval}, {dollr.StatusFailed, 3 * time.Minute, MsgTimedOut}}},
		{"250788000099", dollr.StatusPending, "", []hop{{dollr.StatusProcessing, AcceptDelay, MsgAwaitingApproval}, {dollr.StatusCompleted, 3 * time.Second, MsgCompleted}}},
	}
	for _, c := range cases {
		t.Run(c.phone, func(t *testing.T) {
			p, err := n.Plan(&dollr.PaymentAccount{Method: "MTN_MOMO_LBR", AccountNumber: c.phone}, 1, uuid.NewString(), now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status != c.status || p.GatewayMessage != c.message || p.ClientSecret != "" || p.RequiresAction {
				t.Fatalf("plan = %+v", p)
			}
			if !strings.HasPrefix(p.ProviderTransactionID, "momo_") {
				t.Fatalf("provider transaction id %q", p.ProviderTransactionID)
			}
			checkChain(t, p, now, c.status, func(i int) (dollr.ExecutionStatus, time.Duration, string) {
				return c.hops[i].to, c.hops[i].at, c.hops[i].msg
			}, len(c.hops))
		})
	}
}

// checkChain walks the plan's job chain as the runner would and checks each step.
func checkChain(t *testing.T, p Plan, now time.Time, from dollr.ExecutionStatus, want func(int) (dollr.ExecutionStatus, time.Duration, string), n int) {
	t.Helper()
	if n == 0 {
		if len(p.Jobs) != 0 {
			t.Fatalf("jobs = %+v, want none", p.Jobs)
		}
		return
	}
	if len(p.Jobs) != 1 {
		t.Fatalf("jobs = %d, want one chain", len(p.Jobs))
	}
	steps, err := decodePayload(p.Jobs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != n || !p.Jobs[0].RunAt.Equal(steps[0].At) || p.Jobs[0].Kind != JobKind {
		t.Fatalf("steps = %+v, job %+v", steps, p.Jobs[0])
	}
	for i, s := range steps {
		to, at, msg := want(i)
		if s.From != from || s.To != to || !s.At.Equal(now.Add(at)) || s.GatewayMessage != msg {
			t.Fatalf("step %d = %+v, want %s→%s at +%s %q", i, s, from, to, at, msg)
		}
		if !dollr.CanTransition(s.From, s.To) {
			t.Fatalf("step %d is illegal: %s→%s", i, s.From, s.To)
		}
		from = to
	}
}

func TestPlanCards(t *testing.T) {
	n := &Network{Delay: 2 * time.Second, LongDelay: time.Minute}
	now := time.Unix(1_800_000_000, 0).UTC()
	ref := uuid.NewString()
	for pm, want := range map[string]dollr.ExecutionStatus{
		"pm_card_visa":                            dollr.StatusPending,
		"pm_card_mastercard":                      dollr.StatusPending,
		"pm_1PgXyzAbc":                            dollr.StatusPending,
		"pm_card_chargeDeclined":                  dollr.StatusFailed,
		"pm_card_chargeDeclinedInsufficientFunds": dollr.StatusFailed,
		"pm_card_threeDSecure2Required":           dollr.StatusProcessing,
		"pm_card_authenticationRequired":          dollr.StatusProcessing,
	} {
		t.Run(pm, func(t *testing.T) {
			p, err := n.Plan(&dollr.PaymentAccount{Method: dollr.MethodCreditCard, AccountNumber: pm}, 7, ref, now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status != want {
				t.Fatalf("status %s, want %s", p.Status, want)
			}
			if !strings.HasPrefix(p.ClientSecret, p.ProviderTransactionID+"_secret_") || !strings.HasPrefix(p.ProviderTransactionID, "pi_") {
				t.Fatalf("client secret %q, pi %q", p.ClientSecret, p.ProviderTransactionID)
			}
			m, r, ok := parseClientSecret(p.ClientSecret)
			if !ok || m != 7 || r != ref {
				t.Fatalf("parseClientSecret = %d %q %v", m, r, ok)
			}
			switch want {
			case dollr.StatusProcessing:
				if !p.RequiresAction || p.GatewayMessage != MsgRequiresAction {
					t.Fatalf("3DS plan = %+v", p)
				}
				checkChain(t, p, now, dollr.StatusProcessing, func(int) (dollr.ExecutionStatus, time.Duration, string) {
					return dollr.StatusFailed, time.Minute, Msg3DSTimedOut
				}, 1)
			case dollr.StatusFailed:
				if p.GatewayMessage == "" || len(p.Jobs) != 0 {
					t.Fatalf("decline plan = %+v", p)
				}
			default:
				checkChain(t, p, now, dollr.StatusPending, func(i int) (dollr.ExecutionStatus, time.Duration, string) {
					if i == 0 {
						return dollr.StatusProcessing, AcceptDelay, MsgProcessing
					}
					return dollr.StatusCompleted, 2 * time.Second, MsgCompleted
				}, 2)
			}
		})
	}
}

func TestAcceptDelayNeverExceedsDelay(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p, _ := (&Network{}).Plan(&dollr.PaymentAccount{Method: "MTN_MOMO_LBR", AccountNumber: "231770000010"}, 1, uuid.NewString(), now)
	if !p.Jobs[0].RunAt.Equal(now) {
		t.Fatalf("zero-delay network schedules at %v, want now", p.Jobs[0].RunAt)
	}
}

func TestFee(t *testing.T) {
	for payer, fee := range map[dollr.Amount]dollr.Amount{1250: 19, 100: 2, 1: 0, 33: 0, 34: 1, 100000: 1500, 0: 0} {
		if got := Fee(payer); got != fee {
			t.Errorf("Fee(%s) = %s, want %s", payer, got, fee)
		}
	}
}

func TestParseClientSecretRejects(t *testing.T) {
	good, err := newClientSecret("pi_abc", 3, uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "pi_", "pi_x_secret_", "pi_x_secret_!!!", "xx" + good, good + "a", strings.Replace(good, "pi_abc", "pi_abc_secret_zz", 1)[:20]} {
		if _, _, ok := parseClientSecret(s); ok {
			t.Errorf("parseClientSecret(%q) ok", s)
		}
	}
}

func FuzzParseClientSecret(f *testing.F) {
	good, _ := newClientSecret("pi_abc", 3, uuid.NewString())
	f.Add(good)
	f.Add("pi_x_secret_aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		if m, ref, ok := parseClientSecret(s); ok {
			if m <= 0 {
				t.Fatalf("merchant %d", m)
			}
			if _, err := uuid.Parse(ref); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzDecodePayload(f *testing.F) {
	p, _ := (&Network{}).Plan(&dollr.PaymentAccount{Method: "MTN_MOMO_LBR", AccountNumber: "231770000010"}, 1, uuid.NewString(), time.Now())
	f.Add(p.Jobs[0].Payload)
	f.Add(`{"steps":[]}`)
	f.Fuzz(func(t *testing.T, s string) {
		steps, err := decodePayload(s)
		if err == nil && len(steps) == 0 {
			t.Fatal("no steps without error")
		}
	})
}
