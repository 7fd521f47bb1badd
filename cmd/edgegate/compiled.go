//go:build !edgegate_nocompiled

package main

// The compiled-in API: the generated code of proto/'s services
// (protoc-gen-edgegate), registered with schema.RegisterCompiled. A
// binary built with -tags edgegate_nocompiled has none: it knows only the
// descriptor sets and server reflection its configuration names.
import _ "github.com/edgegate/edgegate/gen/compiled"
