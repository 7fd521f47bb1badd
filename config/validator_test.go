package config

import (
	"runtime"
	"testing"
)

// A Load's validator is not kept once the Load has returned: after a
// collection there is none, so a serving gateway holds no validator
// between reloads.
func TestLoadKeepsNoValidator(t *testing.T) {
	if _, err := LoadDefault(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	if lastValidator.Value() != nil {
		t.Fatal("the validator outlived its Load and a collection")
	}
}

// A Load while a validator lives uses it rather than building another.
func TestLoadSharesALiveValidator(t *testing.T) {
	v, err := loadValidator()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDefault(); err != nil {
		t.Fatal(err)
	}
	if got := lastValidator.Value(); got != v {
		t.Fatalf("Load built another validator while one lived (%p, want %p)", got, v)
	}
	runtime.KeepAlive(v)
}
