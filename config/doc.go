// Package config loads and checks edgegate's configuration file.
//
// The file is YAML whose schema is the protobuf message
// edgegate.config.v1.Config (proto/edgegate/config/v1/config.proto). Load
// reads it strictly with protoyaml (an unknown key or a wrong type is an
// error), checks the field rules with protovalidate, then checks what the
// schema cannot say alone (names are unique, every route names a cluster
// that exists, endpoints are well formed). Every error names the file, line,
// column and field path. A returned Config has every default filled in, so
// that the rest of the gateway reads values, never zeroes.
package config
