package config

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions are what Watch calls and when.
type WatchOptions struct {
	// Settle is how long a file written in place must stay unchanged
	// before it is taken as complete.
	Settle time.Duration
	// Changed is called (from the watch's goroutine) when the file has a
	// new complete content.
	Changed func()
	// Settling, when set, is called when a write in place starts a wait
	// for the file to settle.
	Settling func()
}

// Watch calls o.Changed when the file at path has a new complete content,
// until ctx ends. It returns an error when the watch cannot start.
//
// A file is complete when it was put into place whole:
//
//   - renamed over path (the atomic way: write a temporary file in the
//     same directory, then rename it): Changed is called at once;
//   - path (or a directory on its way) is a symbolic link that now points
//     elsewhere, as when Kubernetes swaps a ConfigMap volume's "..data"
//     link: Changed is called at once.
//
// A file written in place (or created, then written, or renamed from
// another directory) may be read half written, so it is taken as
// complete only once its size and modification time have not changed for
// o.Settle: Changed is called then. A Settle of 0 calls it at the first
// write.
//
// The watch is on path's directory (and, when path resolves elsewhere
// through symbolic links, on the directory of the file it resolves to),
// so that replacements are seen too.
func Watch(ctx context.Context, path string, o WatchOptions) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		_ = w.Close()
		return err
	}
	fw := &fileWatch{w: w, abs: abs, o: o}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		_ = w.Close()
		return err
	}
	fw.resolved = fw.resolve()
	fw.watchTarget()
	go fw.run(ctx)
	return nil
}

// fileWatch is the state of one Watch.
type fileWatch struct {
	w        *fsnotify.Watcher
	abs      string // the watched path, absolute
	o        WatchOptions
	resolved string // where abs resolves to through symbolic links ("" when it does not)
	target   string // the resolved file's directory when it is watched besides abs's

	renamed bool // the last event was another file's rename away in a watched directory
}

// resolve returns where abs resolves to through symbolic links, or ""
// when it does not exist.
func (f *fileWatch) resolve() string {
	r, err := filepath.EvalSymlinks(f.abs)
	if err != nil {
		return ""
	}
	return r
}

// watchTarget watches the directory of the resolved file when it is not
// abs's (a link to a file elsewhere), so that its writes are seen.
func (f *fileWatch) watchTarget() {
	dir := ""
	if f.resolved != "" && filepath.Dir(f.resolved) != filepath.Dir(f.abs) {
		dir = filepath.Dir(f.resolved)
	}
	if dir == f.target {
		return
	}
	if f.target != "" {
		_ = f.w.Remove(f.target)
	}
	f.target = ""
	if dir != "" && f.w.Add(dir) == nil {
		f.target = dir
	}
}

// stamp is what says a file changed: its size and modification time.
type stamp struct {
	size int64
	mod  time.Time
	ok   bool
}

func (f *fileWatch) stamp() stamp {
	fi, err := os.Stat(f.abs)
	if err != nil {
		return stamp{}
	}
	return stamp{size: fi.Size(), mod: fi.ModTime(), ok: true}
}

func (f *fileWatch) run(ctx context.Context) {
	defer func() { _ = f.w.Close() }()
	// settled fires settle after the last in-place write; pending says
	// whether one waits, last is the file's stamp at the last write seen.
	settled := time.NewTimer(time.Hour)
	settled.Stop()
	defer settled.Stop()
	pending := false
	var last stamp
	// applied is the file last loaded: one change seen through several
	// events (a link renamed over the file is a swap and a rename) is
	// loaded once.
	var applied os.FileInfo
	load := func() {
		fi, err := os.Stat(f.abs)
		if err == nil && applied != nil && os.SameFile(fi, applied) && fi.Size() == applied.Size() && fi.ModTime().Equal(applied.ModTime()) {
			return
		}
		applied = fi
		f.o.Changed()
	}
	apply := func() {
		if pending {
			settled.Stop()
			pending = false
		}
		load()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-f.w.Events:
			if !ok {
				return
			}
			name := filepath.Clean(ev.Name)
			ours := name == f.abs || (f.resolved != "" && name == f.resolved)
			renamedBefore := f.renamed
			f.renamed = ev.Has(fsnotify.Rename) && !ours
			if r := f.resolve(); r != f.resolved {
				// A link on the way to the file now points elsewhere, or
				// the file was replaced by (or with) a link: a swap, whole.
				f.resolved = r
				f.watchTarget()
				// (Not when it is the file created afresh under its own
				// name: that one is written in place.)
				if r != "" && (!ours || !ev.Has(fsnotify.Create) || renamedBefore) {
					apply()
					continue
				}
			}
			if !ours {
				continue
			}
			switch {
			case ev.Has(fsnotify.Create) && renamedBefore:
				// Renamed into place from the same directory: the rename
				// away of the temporary name came just before (inotify
				// reports a rename as these two events, in a row).
				apply()
			case ev.Has(fsnotify.Create | fsnotify.Write):
				// Written in place, or created and then written: wait
				// until it stops changing.
				last = f.stamp()
				settled.Reset(f.o.Settle)
				if !pending && f.o.Settling != nil {
					f.o.Settling()
				}
				pending = true
			}
		case <-settled.C:
			if !pending {
				continue
			}
			if now := f.stamp(); now != last {
				// Changed without an event seen yet: wait again.
				last = now
				settled.Reset(f.o.Settle)
				continue
			}
			pending = false
			if last.ok {
				load()
			}
		case _, ok := <-f.w.Errors:
			if !ok {
				return
			}
		}
	}
}
