// Package raftutil holds what every hashicorp/raft user in Skiff needs: a
// logger adapter and deadline-bound waits on futures.
package raftutil

import (
	"bytes"
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// NewHCLogger gives hashicorp/raft a logger that writes through ours.
// Raft logs at info level on every election and snapshot, which is what an
// operator wants to see; debug chatter is dropped.
func NewHCLogger(logger *slog.Logger) hclog.Logger {
	var out io.Writer = io.Discard
	if logger.Handler().Enabled(context.Background(), slog.LevelWarn) {
		out = slogWriter{logger}
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Level:           hclog.Info,
		Output:          out,
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter turns each line hclog writes into one slog record.
type slogWriter struct{ logger *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	switch {
	case bytes.Contains(p, []byte("[ERROR]")):
		level = slog.LevelError
	case bytes.Contains(p, []byte("[WARN]")):
		level = slog.LevelWarn
	}
	w.logger.Log(context.Background(), level, line)
	return len(p), nil
}
