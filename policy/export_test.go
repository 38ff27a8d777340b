package policy

// Exported for policy_test.
var (
	TaxonomyForTest        = taxonomy
	TaxonomyClassesForTest = taxonomyClasses
)
