package partition

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// writeSnapshotDir builds a snapshot directory by hand: two files and a
// manifest.
func writeSnapshotDir(t *testing.T, dir string) *manifest {
	t.Helper()
	files := map[string][]byte{
		"00000000000000000000.log":  bytes.Repeat([]byte("a"), 5000),
		"00000000000000000000.jrnl": []byte("journal"),
	}
	m := &manifest{LogStartOffset: 0, NextOffset: 10, LastLogIndex: 4}
	var src []sourceFile
	for name, data := range files {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src = append(src, sourceFile{Name: name, Path: p, Size: int64(len(data))})
	}
	store, err := newSnapshotStore(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := store.Create(1, 7, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.(*snapshotSink).linkFiles(m, src); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSnapshotStreamRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "snaps")
	writeSnapshotDir(t, src)
	store, _ := newSnapshotStore(src, 2)
	metas, err := store.List()
	if err != nil || len(metas) != 1 || metas[0].Index != 7 || metas[0].Term != 2 {
		t.Fatalf("list: %+v, %v", metas, err)
	}
	meta, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(stream)) != meta.Size {
		t.Fatalf("stream is %d bytes, meta says %d (InstallSnapshot reads exactly Size)", len(stream), meta.Size)
	}

	// Another store receives it the way Raft's InstallSnapshot delivers it.
	dst := filepath.Join(t.TempDir(), "snaps")
	other, _ := newSnapshotStore(dst, 2)
	sink, err := other.Create(1, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(sink, bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	_, got, _, ok, err := other.latest()
	if err != nil || !ok || got.Index != 7 {
		t.Fatalf("received snapshot: %+v ok=%v %v", got, ok, err)
	}
	_, rc2, err := other.Open(got.ID)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := io.ReadAll(rc2)
	rc2.Close()
	if !bytes.Equal(stream, again) {
		t.Fatal("re-streamed snapshot differs from the one received")
	}
}

func TestSnapshotStreamRejectsCorruption(t *testing.T) {
	src := filepath.Join(t.TempDir(), "snaps")
	writeSnapshotDir(t, src)
	store, _ := newSnapshotStore(src, 2)
	metas, _ := store.List()
	_, rc, _ := store.Open(metas[0].ID)
	stream, _ := io.ReadAll(rc)
	rc.Close()

	// Every truncation and a flipped byte at many positions must fail with
	// ErrSnapshotCorrupt and leave no snapshot behind.
	for cut := 0; cut < len(stream); cut += 97 {
		dir := t.TempDir()
		if _, err := readSnapshotStream(bytes.NewReader(stream[:cut]), dir); !errors.Is(err, ErrSnapshotCorrupt) {
			t.Fatalf("cut at %d: got %v", cut, err)
		}
	}
	for pos := 0; pos < len(stream); pos += 53 {
		bad := bytes.Clone(stream)
		bad[pos] ^= 0x40
		dst := filepath.Join(t.TempDir(), "snaps")
		other, _ := newSnapshotStore(dst, 2)
		sink, _ := other.Create(1, 7, 2, raft.Configuration{}, 1, nil)
		sink.Write(bad)
		err := sink.Close()
		if err == nil {
			// A flip inside the JSON manifest may still parse (e.g. a
			// letter's case in a key); the files' CRCs must then match, and
			// the snapshot must be usable.
			if _, _, _, ok, lerr := other.latest(); !ok || lerr != nil {
				t.Fatalf("flip at %d accepted but unusable: %v", pos, lerr)
			}
			continue
		}
		if metas, _ := other.List(); len(metas) != 0 {
			t.Fatalf("flip at %d: rejected snapshot still listed", pos)
		}
	}
}

func TestSnapshotStoreKeepsNewestAndDropsPartial(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snaps")
	for i := 0; i < 4; i++ {
		writeSnapshotDir(t, dir)
		time.Sleep(2 * time.Millisecond) // ids carry a millisecond stamp
	}
	store, _ := newSnapshotStore(dir, 2)
	metas, _ := store.List()
	if len(metas) != 2 {
		t.Fatalf("kept %d snapshots, want 2", len(metas))
	}
	sink, _ := store.Create(1, 9, 3, raft.Configuration{}, 1, nil)
	sink.Write([]byte(snapshotMagic))
	// The process dies here: a reopened store removes the partial one.
	sink.(*snapshotSink).pw.CloseWithError(errors.New("crash"))
	<-sink.(*snapshotSink).result
	if _, err := newSnapshotStore(dir, 2); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == snapshotTmpExt {
			t.Fatalf("partial snapshot %s survived a reopen", e.Name())
		}
	}
	if _, _, err := store.Open("../../etc"); err == nil {
		t.Fatal("Open accepted a path outside the store")
	}
}

// TestLogBehindSnapshotIsRebuilt covers the rqlite #2747 trap: Raft will not
// replay entries covered by the newest snapshot, so a log that lost data
// the snapshot covers must be rebuilt from the snapshot's files.
func TestLogBehindSnapshotIsRebuilt(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	ctx := context.Background()
	acks := &ackLog{}
	for seq := int32(0); seq < 150; seq += 3 {
		res, err := c.produceRetrying(ctx, testBatch(t, 5, seq, 3))
		if err != nil {
			t.Fatal(err)
		}
		acks.add(5, seq, res)
	}
	nd := c.nodes[0]
	if err := nd.r().Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, nd.r())
	c.stop(nd)
	// Lose the log entirely (a disk swap, an operator's rm).
	if err := os.RemoveAll(filepath.Join(nd.dir, logDirName)); err != nil {
		t.Fatal(err)
	}
	c.start(nd)
	c.waitLeader(10 * time.Second)
	after := readAll(t, nd.r())
	if !bytes.Equal(before, after) {
		t.Fatalf("rebuilt log differs: %d bytes before, %d after", len(before), len(after))
	}
	verifyLog(t, after, acks)
	res, err := c.produceRetrying(ctx, testBatch(t, 5, 147, 3))
	if err != nil || !res.Duplicate {
		t.Fatalf("producer state after rebuild: %+v, %v", res, err)
	}
}
