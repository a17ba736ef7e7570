package events

import "embed"

// Schemas holds the published JSON Schemas (schema/<name>.json, the documents SchemaURI names), so a
// validator in this repository (the HTTP contract's) reads them without the network.
//
//go:embed schema/*.json
var Schemas embed.FS
