package policy

// The taxonomy entry a withheld primary taxonomy is replaced by: the schema
// requires one, and "undetermined" claims nothing.
const (
	placeholderTaxonomyClass = "other"
	placeholderTaxonomyType  = "undetermined"
)
