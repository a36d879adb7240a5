//go:build tools

// Package tools pins the Pulumi CLI's main package so `go build` resolves it
// from this module's go.sum (pkg/v3's own go.mod has replace directives that
// make `go install pkg@version` fail).
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
