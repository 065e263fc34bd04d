package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedSize bounds the records section of a compressed batch once
// decompressed. A few hundred bytes of gzip or zstd can claim gigabytes; a
// batch whose records would exceed this is rejected as corrupt (and the
// Builder refuses to produce one), so no batch decompresses to more than
// this. It is far above the broker's default maximum batch size (1 MiB) to
// leave room for highly compressible data.
const MaxDecompressedSize = 64 << 20

// errDecompressedTooLarge is returned by decompress when the output would
// exceed the limit; decoders report it as ErrCorrupt.
var errDecompressedTooLarge = errors.New("decompressed records exceed the size limit")

// Codec state shared by all goroutines.
//
// Building a zstd encoder or decoder costs far more than a small batch
// takes to compress, so one of each is created on first use and then
// shared. This is safe: EncodeAll and DecodeAll are documented as safe for
// concurrent use and keep no state between calls (each call borrows one of
// the instance's internal per-goroutine states), and a Decoder used only
// through DecodeAll starts no goroutines. Nothing else about them is
// mutable, so there is nothing to reset or to leak between callers.
var (
	zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	})
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0), // as many concurrent DecodeAll calls as GOMAXPROCS
			zstd.WithDecoderMaxMemory(MaxDecompressedSize),
		)
	})
)

// Stream decoders are pooled: they are not safe for concurrent use but are
// costly enough to allocate (gzip's inflater, lz4's block buffers) that a
// fresh one per batch would dominate decoding small batches. A pooled value
// is fully reset before use, and its input reader is emptied after use so
// the pool pins no caller's buffer.
var (
	gzipReaders = sync.Pool{New: func() any { return new(gzipReader) }}
	lz4Readers  = sync.Pool{New: func() any { return &lz4Reader{lz: lz4.NewReader(nil)} }}
)

type gzipReader struct {
	src bytes.Reader
	gz  gzip.Reader
}

type lz4Reader struct {
	src bytes.Reader
	lz  *lz4.Reader
}

// sliceWriter is an io.Writer appending to a reusable slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compressor holds one Builder's compression output buffer and stream
// encoders, reused from batch to batch. Not safe for concurrent use.
type compressor struct {
	out sliceWriter
	gz  *gzip.Writer
	lz  *lz4.Writer
}

// compress returns src compressed with codec. The result aliases the
// compressor's buffer and is valid until the next call.
func (c *compressor) compress(codec Compression, src []byte) ([]byte, error) {
	c.out.b = c.out.b[:0]
	switch codec {
	case CompressionGzip:
		if c.gz == nil {
			c.gz = gzip.NewWriter(&c.out)
		} else {
			c.gz.Reset(&c.out)
		}
		if _, err := c.gz.Write(src); err != nil {
			return nil, fmt.Errorf("record: gzip: %w", err)
		}
		if err := c.gz.Close(); err != nil {
			return nil, fmt.Errorf("record: gzip: %w", err)
		}
	case CompressionSnappy:
		// A raw snappy block, as franz-go and librdkafka write. Java
		// consumers read it too: xerial's SnappyInputStream falls back to
		// a raw block when the framing magic is absent.
		n := s2.MaxEncodedLen(len(src))
		if n < 0 {
			return nil, fmt.Errorf("record: snappy: %w", ErrTooLarge)
		}
		c.out.b = s2.EncodeSnappy(slices.Grow(c.out.b, n), src)
	case CompressionLZ4:
		if c.lz == nil {
			c.lz = lz4.NewWriter(&c.out)
			// What Kafka's Java producer writes: 64 KiB independent blocks,
			// no content checksum (the batch CRC covers the bytes, and
			// Java's reader skips it anyway). Small blocks also keep the
			// writer's buffer small.
			if err := c.lz.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)); err != nil {
				return nil, fmt.Errorf("record: lz4: %w", err)
			}
		} else {
			c.lz.Reset(&c.out)
		}
		if _, err := c.lz.Write(src); err != nil {
			return nil, fmt.Errorf("record: lz4: %w", err)
		}
		if err := c.lz.Close(); err != nil {
			return nil, fmt.Errorf("record: lz4: %w", err)
		}
	case CompressionZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return nil, fmt.Errorf("record: zstd: %w", err)
		}
		c.out.b = enc.EncodeAll(src, c.out.b)
	default:
		return nil, fmt.Errorf("record: codec %d: %w", codec, ErrUnknownCompression)
	}
	return c.out.b, nil
}

// decompress returns the records section src decompressed with codec,
// refusing to produce more than limit bytes. The result is freshly
// allocated (records decoded from it may alias it for as long as the
// caller likes). Errors are plain; the caller wraps them in a FormatError.
func decompress(codec Compression, src []byte, limit int) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch codec {
	case CompressionGzip:
		out, err = gunzip(src, limit)
	case CompressionSnappy:
		out, err = unsnappy(src, limit)
	case CompressionLZ4:
		out, err = unlz4(src, limit)
	case CompressionZstd:
		var dec *zstd.Decoder
		if dec, err = zstdDecoder(); err == nil {
			out, err = dec.DecodeAll(src, nil)
		}
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			err = errDecompressedTooLarge
		}
	default:
		return nil, ErrUnknownCompression
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", codec, err)
	}
	// The stream decoders stop at limit themselves; this catches the
	// shared zstd decoder when a caller's limit is below the one it was
	// built with.
	if len(out) > limit {
		return nil, fmt.Errorf("%s: %w", codec, errDecompressedTooLarge)
	}
	if out == nil {
		out = []byte{} // so that empty keys decoded from it stay non-nil
	}
	return out, nil
}

func gunzip(src []byte, limit int) ([]byte, error) {
	r := gzipReaders.Get().(*gzipReader)
	defer func() {
		r.src.Reset(nil)
		gzipReaders.Put(r)
	}()
	r.src.Reset(src)
	if err := r.gz.Reset(&r.src); err != nil {
		return nil, err
	}
	// The gzip trailer's ISIZE (length mod 2^32) is a good first guess at
	// the output size, but it is unchecked input: never trust it beyond
	// what deflate can expand to (about 1032:1) or the limit.
	hint := 0
	if len(src) >= 4 {
		isize := int(uint32(src[len(src)-4]) | uint32(src[len(src)-3])<<8 | uint32(src[len(src)-2])<<16 | uint32(src[len(src)-1])<<24)
		hint = min(isize, mulCap(len(src), 1032, limit))
	}
	return readAllCapped(&r.gz, hint, limit)
}

func unlz4(src []byte, limit int) ([]byte, error) {
	r := lz4Readers.Get().(*lz4Reader)
	defer func() {
		r.src.Reset(nil)
		r.lz.Reset(nil)
		lz4Readers.Put(r)
	}()
	r.src.Reset(src)
	r.lz.Reset(&r.src)
	// Kafka data typically shrinks to a half or so with lz4; beyond
	// that the buffer doubles.
	out, err := readAllCapped(r.lz, mulCap(len(src), 2, limit), limit)
	if err == nil && len(out) == 0 && len(src) > 0 {
		// pierrec/lz4 reads a source that ends before a frame header as
		// an empty stream; a batch that claims lz4 holds at least a frame.
		return nil, errors.New("lz4: no frame")
	}
	return out, err
}

// readAllCapped reads r to EOF into a new slice, failing with
// errDecompressedTooLarge as soon as more than limit bytes arrive. hint is
// the expected size; growth is geometric beyond it.
func readAllCapped(r io.Reader, hint, limit int) ([]byte, error) {
	buf := make([]byte, 0, min(max(hint, 512), limit+1))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return nil, errDecompressedTooLarge
			}
			buf = slices.Grow(buf, min(cap(buf), limit+1-len(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return nil, errDecompressedTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Snappy.
//
// Kafka batches carry snappy in one of two shapes: a raw snappy block
// (franz-go, librdkafka, this package), or the framing of xerial's
// snappy-java SnappyOutputStream, which the Java producer writes:
//
//	magic    8 bytes  0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00
//	version  int32 big-endian (1)
//	compat   int32 big-endian (1)
//	then until the end: length int32 big-endian, then that many bytes of
//	one raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderSize = 16
	// A snappy block expands at most ~21x (a 3-byte copy emits 64 bytes),
	// so a decoded length claiming more than this ratio is a lie; checking
	// it first means a tiny block cannot make us allocate the limit.
	maxSnappyRatio = 32
)

func unsnappy(src []byte, limit int) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		return unsnappyBlock(nil, src, limit)
	}
	if len(src) < xerialHeaderSize {
		return nil, errors.New("snappy: truncated xerial header")
	}
	rest := src[xerialHeaderSize:]
	out := make([]byte, 0, min(mulCap(len(rest), maxSnappyRatio, limit), 1<<20))
	for len(rest) > 0 {
		if len(rest) < 4 {
			return nil, errors.New("snappy: truncated xerial chunk length")
		}
		n := uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3])
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("snappy: xerial chunk of %d bytes, %d left", n, len(rest))
		}
		var err error
		if out, err = unsnappyBlock(out, rest[:n], limit); err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	return out, nil
}

// unsnappyBlock appends the decoding of one raw snappy block to dst.
func unsnappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	if n > mulCap(len(block), maxSnappyRatio, math.MaxInt) {
		return nil, fmt.Errorf("snappy: block of %d bytes claims %d decoded", len(block), n)
	}
	if n > limit-len(dst) {
		return nil, errDecompressedTooLarge
	}
	dst = slices.Grow(dst, n)
	out := dst[len(dst) : len(dst)+n]
	// DecodeStrict rejects s2 extensions that no snappy encoder writes.
	got, err := snappy.DecodeStrict(out, block)
	if err != nil {
		return nil, fmt.Errorf("snappy: %w", err)
	}
	// It decodes into out, which has room; were it ever to allocate
	// instead, dst would be left holding garbage.
	if len(got) != n || (n > 0 && &got[0] != &out[0]) {
		return nil, errors.New("snappy: block not decoded in place")
	}
	return dst[:len(dst)+n], nil
}

// mulCap returns min(n*k, ceiling) for non-negative n and positive k,
// without the overflow n*k could have on a 32-bit platform.
func mulCap(n, k, ceiling int) int {
	if n > ceiling/k {
		return ceiling
	}
	return n * k
}
