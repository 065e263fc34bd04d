package log

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File name suffixes of a segment. A segment is named by its base offset as
// 20 zero-padded decimal digits, so lexical order is offset order.
const (
	dataSuffix      = ".log"
	journalSuffix   = ".journal"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	// tmpSuffix marks files being written; rename publishes them, and Open
	// deletes leftovers.
	tmpSuffix = ".tmp"
)

// segmentSuffixes lists every file a segment may own, data first: files are
// deleted in this order so that a crash mid-delete leaves either a whole
// segment or orphans without a data file, which Open removes.
var segmentSuffixes = [...]string{dataSuffix, journalSuffix, indexSuffix, timeIndexSuffix}

func segmentPath(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, suffix))
}

// parseSegmentFile splits "00000000000000000042.index" into (42, ".index").
func parseSegmentFile(name string) (base int64, suffix string, ok bool) {
	dot := strings.IndexByte(name, '.')
	if dot != 20 {
		return 0, "", false
	}
	base, err := strconv.ParseInt(name[:dot], 10, 64)
	if err != nil || base < 0 {
		return 0, "", false
	}
	suffix = name[dot:]
	for _, s := range segmentSuffixes {
		if suffix == s {
			return base, suffix, true
		}
	}
	return 0, "", false
}

// syncDir makes creations, renames and deletions in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file that is
// fsynced and renamed, so readers of path see the old or the new content,
// never a mix, and an existing hard link to path keeps the old content.
// The caller syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + tmpSuffix
	err := writeFileSynced(tmp, data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// removeIfExists deletes path, ignoring a missing file.
func removeIfExists(path string) error {
	_, err := removeFile(path)
	return err
}

// removeFile deletes path and reports whether it existed.
func removeFile(path string) (removed bool, err error) {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// copyFilePrefix copies the first n bytes of src to a new file dst (fsynced).
func copyFilePrefix(dst string, src io.ReaderAt, n int64) error {
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.NewSectionReader(src, 0, n))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
	}
	return err
}

// replaceWithPrivateCopy rewrites path as a new inode with the same content
// when other hard links share it, so that truncating or appending to it cannot
// change a file another log (or a snapshot) links to.
func replaceWithPrivateCopy(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if linkCount(fi) <= 1 {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := path + tmpSuffix
	_ = os.Remove(tmp)
	if err := copyFilePrefix(tmp, src, fi.Size()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}
