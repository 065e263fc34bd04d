package partition

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// A snapshot travels between replicas as one byte stream (that is all
// hashicorp/raft's InstallSnapshot can carry):
//
//	"SKIFFSNP" version(1 byte)
//	frame*: nameLen uint16 | name | size uint64 | size bytes | crc32c uint32 of the bytes
//	end:    nameLen 0
//
// The first frame is always the manifest (name "manifest.json"); the others
// are segment and sidecar files, named as in the log directory. At rest a
// snapshot is a directory holding the same files (sealed segments are hard
// links into the live log, so taking a snapshot copies no data).

const (
	snapshotMagic   = "SKIFFSNP"
	snapshotVersion = 1
	manifestName    = "manifest.json"
	maxSnapFileName = 255
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrSnapshotCorrupt means a snapshot stream or directory failed validation.
var ErrSnapshotCorrupt = errors.New("snapshot corrupt")

// manifest describes the state a snapshot captures.
type manifest struct {
	// Index and Term of the last Raft entry the snapshot covers.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Log state at Index.
	LogStartOffset int64  `json:"log_start_offset"`
	NextOffset     int64  `json:"next_offset"`
	LastLogIndex   uint64 `json:"last_log_index"`
	// Producers is the idempotent-producer table (binary, versioned).
	Producers []byte `json:"producers"`
	// Files lists every file of the snapshot with the length that belongs to
	// it: a hard-linked active segment keeps growing in the live log, only its
	// first Size bytes are part of the snapshot.
	Files []snapshotFile `json:"files"`
}

type snapshotFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

func (m *manifest) validate() error {
	seen := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		if err := validSnapshotFileName(f.Name); err != nil {
			return err
		}
		if f.Name == manifestName || seen[f.Name] {
			return fmt.Errorf("%w: duplicate file %q", ErrSnapshotCorrupt, f.Name)
		}
		if f.Size < 0 {
			return fmt.Errorf("%w: file %q has negative size", ErrSnapshotCorrupt, f.Name)
		}
		seen[f.Name] = true
	}
	if m.NextOffset < m.LogStartOffset || m.LogStartOffset < 0 {
		return fmt.Errorf("%w: offsets [%d, %d) out of order", ErrSnapshotCorrupt, m.LogStartOffset, m.NextOffset)
	}
	return nil
}

// validSnapshotFileName keeps a received stream from writing outside its
// directory.
func validSnapshotFileName(name string) error {
	if name == "" || len(name) > maxSnapFileName || name == "." || name == ".." ||
		strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%w: bad file name %q", ErrSnapshotCorrupt, name)
	}
	return nil
}

// streamSize is the exact byte length of the stream for m.
func (m *manifest) streamSize(manifestJSON []byte) int64 {
	n := int64(len(snapshotMagic) + 1)
	n += frameOverhead(manifestName) + int64(len(manifestJSON))
	for _, f := range m.Files {
		n += frameOverhead(f.Name) + f.Size
	}
	return n + 2
}

func frameOverhead(name string) int64 { return 2 + int64(len(name)) + 8 + 4 }

// writeSnapshotStream writes the stream of a snapshot whose files pathOf
// locates.
func writeSnapshotStream(w io.Writer, m *manifest, manifestJSON []byte, pathOf func(name string) string) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return err
	}
	if err := bw.WriteByte(snapshotVersion); err != nil {
		return err
	}
	if err := writeFrame(bw, manifestName, int64(len(manifestJSON)), bytes.NewReader(manifestJSON)); err != nil {
		return err
	}
	for _, f := range m.Files {
		file, err := os.Open(pathOf(f.Name))
		if err != nil {
			return fmt.Errorf("snapshot file %s: %w", f.Name, err)
		}
		err = writeFrame(bw, f.Name, f.Size, io.NewSectionReader(file, 0, f.Size))
		file.Close()
		if err != nil {
			return fmt.Errorf("snapshot file %s: %w", f.Name, err)
		}
	}
	if _, err := bw.Write([]byte{0, 0}); err != nil {
		return err
	}
	return bw.Flush()
}

func writeFrame(w io.Writer, name string, size int64, r io.Reader) error {
	hdr := make([]byte, 0, 2+len(name)+8)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len(name)))
	hdr = append(hdr, name...)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(size))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	h := crc32.New(crcTable)
	n, err := io.Copy(io.MultiWriter(w, h), r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%w: %s holds %d bytes, manifest says %d", ErrSnapshotCorrupt, name, n, size)
	}
	_, err = w.Write(binary.BigEndian.AppendUint32(nil, h.Sum32()))
	return err
}

// readSnapshotStream unpacks a stream into dir (which must exist and be
// empty), fsyncing every file, and returns the manifest.
func readSnapshotStream(r io.Reader, dir string) (*manifest, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrSnapshotCorrupt, err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic || head[len(snapshotMagic)] != snapshotVersion {
		return nil, fmt.Errorf("%w: not a skiff snapshot (or unknown version)", ErrSnapshotCorrupt)
	}
	var m *manifest
	expected := map[string]int64{}
	for {
		var nameLen [2]byte
		if _, err := io.ReadFull(br, nameLen[:]); err != nil {
			return nil, fmt.Errorf("%w: frame: %v", ErrSnapshotCorrupt, err)
		}
		n := int(binary.BigEndian.Uint16(nameLen[:]))
		if n == 0 {
			break
		}
		if n > maxSnapFileName {
			return nil, fmt.Errorf("%w: file name of %d bytes", ErrSnapshotCorrupt, n)
		}
		nameAndSize := make([]byte, n+8)
		if _, err := io.ReadFull(br, nameAndSize); err != nil {
			return nil, fmt.Errorf("%w: frame: %v", ErrSnapshotCorrupt, err)
		}
		name := string(nameAndSize[:n])
		size := int64(binary.BigEndian.Uint64(nameAndSize[n:]))
		if m == nil {
			if name != manifestName || size > 64<<20 || size < 0 {
				return nil, fmt.Errorf("%w: stream does not start with a manifest", ErrSnapshotCorrupt)
			}
			var buf bytes.Buffer
			if err := readFrameBody(br, &buf, size); err != nil {
				return nil, err
			}
			m = new(manifest)
			if err := json.Unmarshal(buf.Bytes(), m); err != nil {
				return nil, fmt.Errorf("%w: manifest: %v", ErrSnapshotCorrupt, err)
			}
			if err := m.validate(); err != nil {
				return nil, err
			}
			for _, f := range m.Files {
				expected[f.Name] = f.Size
			}
			if err := writeFileSynced(filepath.Join(dir, manifestName), buf.Bytes()); err != nil {
				return nil, err
			}
			continue
		}
		want, ok := expected[name]
		if !ok || want != size {
			return nil, fmt.Errorf("%w: unexpected file %q (%d bytes)", ErrSnapshotCorrupt, name, size)
		}
		delete(expected, name)
		if err := receiveFile(br, filepath.Join(dir, name), size); err != nil {
			return nil, err
		}
	}
	if m == nil {
		return nil, fmt.Errorf("%w: no manifest", ErrSnapshotCorrupt)
	}
	if len(expected) > 0 {
		return nil, fmt.Errorf("%w: %d files missing from the stream", ErrSnapshotCorrupt, len(expected))
	}
	return m, syncDir(dir)
}

func receiveFile(r io.Reader, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := readFrameBody(r, f, size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readFrameBody(r io.Reader, w io.Writer, size int64) error {
	h := crc32.New(crcTable)
	if _, err := io.CopyN(io.MultiWriter(w, h), r, size); err != nil {
		return fmt.Errorf("%w: frame body: %v", ErrSnapshotCorrupt, err)
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return fmt.Errorf("%w: frame crc: %v", ErrSnapshotCorrupt, err)
	}
	if binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
		return fmt.Errorf("%w: frame crc mismatch", ErrSnapshotCorrupt)
	}
	return nil
}

func writeFileSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
