package postgres

// Lookups whose plans TestLookupPlansOnYoungTables checks.
const (
	ExecutionByReferenceSQL = executionByReferenceSQL
	SourceByIDSQL           = sourceByIDSQL
)

// MigrationCount is how many migrations the package embeds.
func MigrationCount() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}
