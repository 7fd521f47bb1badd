package config_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegate/edgegate/config"
)

// watch watches path with settle and returns a channel of the file's
// content each time Changed is called, and one that gets a value when a
// settle wait starts.
func watch(t *testing.T, path string, settle time.Duration) (changed chan string, settling chan struct{}) {
	t.Helper()
	changed, settling = make(chan string, 16), make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	err := config.Watch(ctx, path, config.WatchOptions{
		Settle: settle,
		Changed: func() {
			b, _ := os.ReadFile(path)
			changed <- string(b)
		},
		Settling: func() { settling <- struct{}{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	return changed, settling
}

func next[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		var zero T
		return zero
	}
}

// A file written in place in two parts is loaded once, whole, after it
// settles.
func TestWatchInPlaceWriteSettles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, settling := watch(t, path, 300*time.Millisecond)
	if err := os.WriteFile(path, []byte("first half\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next(t, settling, "settle wait")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("second half\n"); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if got := next(t, changed, "load"); got != "first half\nsecond half\n" {
		t.Fatalf("loaded %q, want the whole file", got)
	}
}

// A rename into place and a swap of a link on the way (Kubernetes'
// "..data") are loaded at once, without the settle period.
func TestWatchRenameAndLinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"..v1", "..v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, v, "c.yaml"), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("plain\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, _ := watch(t, path, time.Hour)

	if err := os.WriteFile(path+".tmp", []byte("renamed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if got := next(t, changed, "load after the rename"); got != "renamed\n" {
		t.Fatalf("loaded %q after the rename", got)
	}

	swap := func(v string) {
		t.Helper()
		if err := os.Symlink(v, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap("..v1")
	if err := os.Symlink(filepath.Join("..data", "c.yaml"), path+".link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".link", path); err != nil {
		t.Fatal(err)
	}
	if got := next(t, changed, "load after the link"); got != "..v1\n" {
		t.Fatalf("loaded %q after the link", got)
	}
	swap("..v2")
	if got := next(t, changed, "load after the ..data swap"); got != "..v2\n" {
		t.Fatalf("loaded %q after the swap", got)
	}
}
