package postgres

// Lookups whose plans TestLookupPlansOnYoungTables checks.
const (
	ExecutionByReferenceSQL     = executionByReferenceSQL
	LatestExecutionForSourceSQL = latestExecutionForSourceSQL
	RecentExecutionTimesSQL     = recentExecutionTimesSQL
	MoveSourceSQL               = moveSourceSQL
	SourceByIDSQL               = sourceByIDSQL
	PartyByIDSQL                = partyByIDSQL
)

// MigrationCount is how many migrations the package embeds.
func MigrationCount() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}
