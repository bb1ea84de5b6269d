// Package sandbox is the deterministic payment network behind the sandbox
// API: mobile-money outcomes chosen by the payer's phone number, card outcomes
// chosen by Stripe-style test payment-method ids, and the durable jobs that
// move a payment through its statuses (see docs/sandbox.md).
package sandbox

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dollr/dollr"
)

// Default delays (dollr serve --sandbox-delay / --sandbox-long-delay).
const (
	DefaultDelay     = 3 * time.Second
	DefaultLongDelay = 3 * time.Minute
	// AcceptDelay is when a PENDING payment turns PROCESSING ("within half a second").
	AcceptDelay = 200 * time.Millisecond
)

// Gateway messages, stable so tests and integrators can match them.
const (
	MsgAwaitingApproval = "Waiting for the customer to approve the payment on their phone"
	MsgProcessing       = "Payment is being processed"
	MsgCompleted        = "Payment completed"
	MsgInsufficient     = "Insufficient funds in the payer's mobile money account"
	MsgInvalidAccount   = "Invalid account: the mobile money number is not registered"
	MsgTimedOut         = "Timed out: the customer did not approve the payment"
	MsgCardDeclined     = "Your card was declined."
	MsgCardInsufficient = "Your card has insufficient funds."
	MsgCardExpired      = "Your card has expired."
	MsgCardIncorrectCVC = "Your card's security code is incorrect."
	MsgCardProcessing   = "An error occurred while processing your card. Try again in a little bit."
	MsgRequiresAction   = "3-D Secure authentication required"
	Msg3DSSucceeded     = "3-D Secure authentication succeeded; payment completed"
	Msg3DSFailed        = "3-D Secure authentication failed"
	Msg3DSTimedOut      = "Timed out: 3-D Secure authentication was not completed"
)

// JobKind is the kind of every job this package schedules.
const JobKind = "sandbox.step"

// Network holds the sandbox's timing. The zero value is usable and means no
// delays (every step is due at once), which is what unit tests want.
type Network struct {
	Delay     time.Duration // a normal payment completes this long after execute
	LongDelay time.Duration // the slow approval (02) and the never-approved timeout (04, 3DS)
}

// Plan is what the network answers when a collection is submitted: the status
// of the execute response, the fields to store, and the jobs that finish it.
type Plan struct {
	Status                dollr.ExecutionStatus
	GatewayMessage        string
	ProviderTransactionID string
	ClientSecret          string // cards only
	RequiresAction        bool
	Jobs                  []dollr.Job
}

// step is one scheduled transition; a job carries the remaining chain, so the
// next step is scheduled in the same transaction that applies this one and
// steps can never run out of order.
type step struct {
	From           dollr.ExecutionStatus `json:"from"`
	To             dollr.ExecutionStatus `json:"to"`
	At             time.Time             `json:"at"`
	GatewayMessage string                `json:"gateway_message,omitempty"`
	RequiresAction *bool                 `json:"requires_action,omitempty"`
}

type payload struct {
	Steps []step `json:"steps"`
}

// Plan decides the outcome of collecting from acct. merchantID and
// referenceID go into a card's client secret so the 3-D Secure endpoint can
// find the payment without extra storage.
func (n *Network) Plan(acct *dollr.PaymentAccount, merchantID int64, referenceID string, now time.Time) (Plan, error) {
	if acct.IsCard() {
		return n.planCard(acct.AccountNumber, merchantID, referenceID, now)
	}
	return n.planMobileMoney(acct.AccountNumber, now), nil
}

// MobileMoneyOutcome names the rule the last two digits of phone select.
func MobileMoneyOutcome(phone string) string {
	if len(phone) < 2 {
		return "complete"
	}
	switch phone[len(phone)-2:] {
	case "01":
		return "insufficient_funds"
	case "02":
		return "slow_approval"
	case "03":
		return "invalid_account"
	case "04":
		return "never_approved"
	}
	return "complete"
}

func (n *Network) accept(now time.Time) time.Time { return now.Add(min(AcceptDelay, n.Delay)) }

func (n *Network) planMobileMoney(phone string, now time.Time) Plan {
	p := Plan{Status: dollr.StatusPending, ProviderTransactionID: "momo_" + randomAlnum(24)}
	processing := step{From: dollr.StatusPending, To: dollr.StatusProcessing, At: n.accept(now), GatewayMessage: MsgAwaitingApproval}
	switch MobileMoneyOutcome(phone) {
	case "insufficient_funds":
		p.Jobs = chain(processing, step{From: dollr.StatusProcessing, To: dollr.StatusFailed, At: now.Add(n.Delay), GatewayMessage: MsgInsufficient})
	case "slow_approval":
		p.Jobs = chain(processing, step{From: dollr.StatusProcessing, To: dollr.StatusCompleted, At: now.Add(n.LongDelay), GatewayMessage: MsgCompleted})
	case "invalid_account":
		p.Status, p.GatewayMessage = dollr.StatusFailed, MsgInvalidAccount
	case "never_approved":
		p.Jobs = chain(processing, step{From: dollr.StatusProcessing, To: dollr.StatusFailed, At: now.Add(n.LongDelay), GatewayMessage: MsgTimedOut})
	default:
		p.Jobs = chain(processing, step{From: dollr.StatusProcessing, To: dollr.StatusCompleted, At: now.Add(n.Delay), GatewayMessage: MsgCompleted})
	}
	return p
}

// Card test payment-method ids (modelled on Stripe's) and what they do.
// Any other pm_ id behaves like pm_card_visa.
var cardDeclines = map[string]string{
	"pm_card_chargeDeclined":                  MsgCardDeclined,
	"pm_card_visa_chargeDeclined":             MsgCardDeclined,
	"pm_card_chargeDeclinedInsufficientFunds": MsgCardInsufficient,
	"pm_card_chargeDeclinedExpiredCard":       MsgCardExpired,
	"pm_card_chargeDeclinedIncorrectCvc":      MsgCardIncorrectCVC,
	"pm_card_chargeDeclinedProcessingError":   MsgCardProcessing,
}

var card3DS = map[string]bool{
	"pm_card_threeDSecure2Required":         true,
	"pm_card_threeDSecureRequired":          true,
	"pm_card_authenticationRequired":        true,
	"pm_card_authenticationRequiredOnSetup": true,
}

// CardOutcome names the rule a payment-method id selects.
func CardOutcome(pm string) string {
	if _, ok := cardDeclines[pm]; ok {
		return "declined"
	}
	if card3DS[pm] {
		return "requires_action"
	}
	return "complete"
}

func (n *Network) planCard(pm string, merchantID int64, referenceID string, now time.Time) (Plan, error) {
	pi := "pi_" + randomAlnum(24)
	secret, err := newClientSecret(pi, merchantID, referenceID)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Status: dollr.StatusPending, ProviderTransactionID: pi, ClientSecret: secret}
	switch CardOutcome(pm) {
	case "declined":
		p.Status, p.GatewayMessage = dollr.StatusFailed, cardDeclines[pm]
	case "requires_action":
		// PROCESSING in the execute response, as Dollr's documented 3DS example;
		// POST /v1/sandbox/3ds/{client_secret} decides it, or it times out.
		p.Status, p.GatewayMessage, p.RequiresAction = dollr.StatusProcessing, MsgRequiresAction, true
		no := false
		p.Jobs = chain(step{From: dollr.StatusProcessing, To: dollr.StatusFailed, At: now.Add(n.LongDelay), GatewayMessage: Msg3DSTimedOut, RequiresAction: &no})
	default:
		p.Jobs = chain(
			step{From: dollr.StatusPending, To: dollr.StatusProcessing, At: n.accept(now), GatewayMessage: MsgProcessing},
			step{From: dollr.StatusProcessing, To: dollr.StatusCompleted, At: now.Add(n.Delay), GatewayMessage: MsgCompleted},
		)
	}
	return p, nil
}

// chain returns the single job that runs steps in order.
func chain(steps ...step) []dollr.Job {
	j, err := stepsJob(steps)
	if err != nil {
		panic(err) // steps are built here from plain values; marshalling cannot fail
	}
	return []dollr.Job{j}
}

func stepsJob(steps []step) (dollr.Job, error) {
	b, err := json.Marshal(payload{Steps: steps})
	if err != nil {
		return dollr.Job{}, err
	}
	return dollr.Job{Kind: JobKind, Payload: string(b), RunAt: steps[0].At}, nil
}

func decodePayload(s string) ([]step, error) {
	var p payload
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("sandbox: bad job payload: %w", err)
	}
	if len(p.Steps) == 0 {
		return nil, fmt.Errorf("sandbox: job payload has no steps")
	}
	return p.Steps, nil
}

// Fee is the sandbox's flat fee: 1.5% of the payer amount, rounded half up to
// the cent, paid by the payee.
func Fee(payer dollr.Amount) dollr.Amount {
	if payer <= 0 {
		return 0
	}
	return (payer*15 + 500) / 1000
}

const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomAlnum(n int) string {
	var sb strings.Builder
	b := make([]byte, 1)
	for sb.Len() < n {
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		// Rejection sampling keeps every character equally likely.
		if int(b[0]) < 256-256%len(alnum) {
			sb.WriteByte(alnum[int(b[0])%len(alnum)])
		}
	}
	return sb.String()
}
