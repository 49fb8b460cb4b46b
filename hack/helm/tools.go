//go:build tools

// Package tools pins the Helm CLI as a dependency of this module, so that
// `go build helm.sh/helm/v3/cmd/helm` here builds exactly the version in go.mod.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
