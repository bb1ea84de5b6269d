package dollr_test

import (
	"testing"

	"github.com/dollr/dollr"
)

func TestCanTransition(t *testing.T) {
	all := []dollr.ExecutionStatus{dollr.StatusPending, dollr.StatusProcessing, dollr.StatusCompleted, dollr.StatusFailed}
	legal := map[[2]dollr.ExecutionStatus]bool{
		{dollr.StatusPending, dollr.StatusProcessing}:   true,
		{dollr.StatusPending, dollr.StatusCompleted}:    true,
		{dollr.StatusPending, dollr.StatusFailed}:       true,
		{dollr.StatusProcessing, dollr.StatusCompleted}: true,
		{dollr.StatusProcessing, dollr.StatusFailed}:    true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := dollr.CanTransition(from, to); got != legal[[2]dollr.ExecutionStatus{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
		if from.Terminal() != (from == dollr.StatusCompleted || from == dollr.StatusFailed) {
			t.Errorf("%s.Terminal() = %v", from, from.Terminal())
		}
	}
}

func TestSourceFollowsCollection(t *testing.T) {
	for exec, want := range map[dollr.ExecutionStatus]dollr.SourceStatus{
		dollr.StatusPending:    dollr.SourceProcessing,
		dollr.StatusProcessing: dollr.SourceProcessing,
		dollr.StatusCompleted:  dollr.SourcePaid,
		dollr.StatusFailed:     dollr.SourceActive, // the customer may try again with a new session
	} {
		if got := dollr.SourceStatusFor(exec); got != want {
			t.Errorf("SourceStatusFor(%s) = %s, want %s", exec, got, want)
		}
	}
}

func TestCheckPayable(t *testing.T) {
	if err := dollr.SourceActive.CheckPayable("session_id"); err != nil {
		t.Fatalf("ACTIVE source not payable: %v", err)
	}
	for _, s := range []dollr.SourceStatus{dollr.SourceIdle, dollr.SourceProcessing, dollr.SourcePaid, dollr.SourceCanceled, "WEIRD"} {
		err := s.CheckPayable("session_id")
		if err == nil || err.Code != dollr.ECONFLICT || len(err.Fields) != 1 {
			t.Fatalf("%s: CheckPayable = %v, want one ECONFLICT field", s, err)
		}
		if loc := err.Fields[0].Loc; len(loc) != 2 || loc[0] != "body" || loc[1] != "session_id" {
			t.Errorf("%s: loc = %v", s, loc)
		}
	}
}
