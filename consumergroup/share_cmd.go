package consumergroup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
)

// Share commands are the replicated changes to share groups: one Go type
// per kind of offsets-log entry, each checking and applying itself. The
// share core (share_core.go) decides which commands an operation makes;
// the shell (share_shell.go) applies them to its working state and
// group-commits them to the offsets partition; every replica applies them
// to its table when it reads them back.
//
// On disk a command is the JSON object {"k": kind, "g": group, ...} that
// versions before the typed commands wrote through one union struct, field
// for field, so logs written by either version replay on the other. The
// decoder ignores fields it does not know, as the union's decoder did:
// replicas of two versions (during a rolling upgrade) must apply the same
// log to the same state.
type shareCmd interface {
	// kind is the entry kind ("share-ack", ...); part of the on-disk
	// format.
	kind() string
	// groupID names the share group the command changes.
	groupID() string
	// check reports why a command read back from the log cannot be
	// applied (it matches errMalformedEntry), or nil. Commands the core
	// makes always pass.
	check() error
	// apply changes the share groups in m. It must not keep references
	// to the command's slices or maps: one command is applied to the
	// table and to a checkpoint's shadow table.
	apply(m map[string]*shareGroupState)
}

// Share acknowledgement kinds and dead-letter actions in commands. The
// values are part of the on-disk format.
const (
	ackAccept  = "accept"
	ackRelease = "release"
	ackRenew   = "renew"

	actionRedrive = "redrive"
	actionDiscard = "discard"
	actionReset   = "reset" // share-init: start the share-partition over
)

// shareConfigCmd replaces a group's settings (merged with the defaults).
type shareConfigCmd struct {
	Group  string            `json:"g"`
	Config map[string]string `json:"cf"`
}

// sharePauseCmd stops delivery (the dead-letter flood breaker).
type sharePauseCmd struct {
	Group  string `json:"g"`
	Reason string `json:"rs,omitempty"`
}

// shareResumeCmd lifts a pause.
type shareResumeCmd struct {
	Group string `json:"g"`
}

// shareInitCmd gives a share-partition its start offset, moves the start
// up past records retention deleted, or (Action reset) starts it over.
type shareInitCmd struct {
	Group     string `json:"g"`
	Topic     string `json:"t"`
	Partition int32  `json:"p,omitempty"`
	Offset    int64  `json:"o,omitempty"`
	Action    string `json:"ac,omitempty"`
}

// shareAcquireCmd locks records to a member until LockUntil.
type shareAcquireCmd struct {
	Group     string  `json:"g"`
	Topic     string  `json:"t"`
	Partition int32   `json:"p,omitempty"`
	Offsets   []int64 `json:"os,omitempty"`
	Member    string  `json:"mb"`
	LockUntil int64   `json:"lu,omitempty"` // unix ms
	At        int64   `json:"at,omitempty"` // unix ms
}

// shareAckCmd settles (accept), hands back (release, each record
// available from Avail[i]) or extends the lock of (renew, to LockUntil)
// records.
type shareAckCmd struct {
	Group     string  `json:"g"`
	Topic     string  `json:"t"`
	Partition int32   `json:"p,omitempty"`
	Ack       string  `json:"ack"`
	Err       string  `json:"er,omitempty"`
	Offsets   []int64 `json:"os,omitempty"`
	Avail     []int64 `json:"av,omitempty"`
	LockUntil int64   `json:"lu,omitempty"`
	At        int64   `json:"at,omitempty"`
}

// shareDeadCmd marks a record for the dead-letter topic and, in
// key-ordered mode, quarantines its key.
type shareDeadCmd struct {
	Group      string `json:"g"`
	Topic      string `json:"t"`
	Partition  int32  `json:"p,omitempty"`
	Offset     int64  `json:"o,omitempty"`
	Err        string `json:"er,omitempty"`
	Key        []byte `json:"key,omitempty"`
	KeyNull    bool   `json:"kn,omitempty"`
	Quarantine bool   `json:"q,omitempty"`
}

// shareDeadLetteredCmd records where a dead record's dead letter is.
type shareDeadLetteredCmd struct {
	Group        string `json:"g"`
	Topic        string `json:"t"`
	Partition    int32  `json:"p,omitempty"`
	Offset       int64  `json:"o,omitempty"`
	DLQTopic     string `json:"dt"`
	DLQPartition int32  `json:"dp,omitempty"`
	DLQOffset    int64  `json:"do,omitempty"`
	Key          []byte `json:"key,omitempty"`
	KeyNull      bool   `json:"kn,omitempty"`
}

// shareResolveCmd redrives (its copy is at RedriveOffset) or discards a
// dead letter.
type shareResolveCmd struct {
	Group         string `json:"g"`
	Topic         string `json:"t"`
	Partition     int32  `json:"p,omitempty"`
	Offset        int64  `json:"o,omitempty"`
	Action        string `json:"ac"`
	RedriveOffset int64  `json:"ro,omitempty"`
}

// shareLeaveCmd releases every record a member holds.
type shareLeaveCmd struct {
	Group  string `json:"g"`
	Member string `json:"mb"`
}

// shareStateCmd restates a whole group (checkpoints); a nil State
// forgets the group.
type shareStateCmd struct {
	Group string           `json:"g"`
	State *shareGroupState `json:"sg,omitempty"`
}

// Kinds of share entries. The values are part of the on-disk format:
// never change one.
const (
	kindShareConfig       = "share-config"
	kindSharePause        = "share-pause"
	kindShareResume       = "share-resume"
	kindShareInit         = "share-init"
	kindShareAcquire      = "share-acquire"
	kindShareAck          = "share-ack"
	kindShareDead         = "share-dead"
	kindShareDeadLettered = "share-dead-lettered"
	kindShareResolve      = "share-resolve"
	kindShareLeave        = "share-leave"
	kindShareState        = "share-state" // a checkpoint's restatement of a whole share group
)

func (*shareConfigCmd) kind() string       { return kindShareConfig }
func (*sharePauseCmd) kind() string        { return kindSharePause }
func (*shareResumeCmd) kind() string       { return kindShareResume }
func (*shareInitCmd) kind() string         { return kindShareInit }
func (*shareAcquireCmd) kind() string      { return kindShareAcquire }
func (*shareAckCmd) kind() string          { return kindShareAck }
func (*shareDeadCmd) kind() string         { return kindShareDead }
func (*shareDeadLetteredCmd) kind() string { return kindShareDeadLettered }
func (*shareResolveCmd) kind() string      { return kindShareResolve }
func (*shareLeaveCmd) kind() string        { return kindShareLeave }
func (*shareStateCmd) kind() string        { return kindShareState }

func (c *shareConfigCmd) groupID() string       { return c.Group }
func (c *sharePauseCmd) groupID() string        { return c.Group }
func (c *shareResumeCmd) groupID() string       { return c.Group }
func (c *shareInitCmd) groupID() string         { return c.Group }
func (c *shareAcquireCmd) groupID() string      { return c.Group }
func (c *shareAckCmd) groupID() string          { return c.Group }
func (c *shareDeadCmd) groupID() string         { return c.Group }
func (c *shareDeadLetteredCmd) groupID() string { return c.Group }
func (c *shareResolveCmd) groupID() string      { return c.Group }
func (c *shareLeaveCmd) groupID() string        { return c.Group }
func (c *shareStateCmd) groupID() string        { return c.Group }

// newShareCmd returns an empty command of kind, or nil for a kind this
// version does not know.
func newShareCmd(kind string) shareCmd {
	switch kind {
	case kindShareConfig:
		return &shareConfigCmd{}
	case kindSharePause:
		return &sharePauseCmd{}
	case kindShareResume:
		return &shareResumeCmd{}
	case kindShareInit:
		return &shareInitCmd{}
	case kindShareAcquire:
		return &shareAcquireCmd{}
	case kindShareAck:
		return &shareAckCmd{}
	case kindShareDead:
		return &shareDeadCmd{}
	case kindShareDeadLettered:
		return &shareDeadLetteredCmd{}
	case kindShareResolve:
		return &shareResolveCmd{}
	case kindShareLeave:
		return &shareLeaveCmd{}
	case kindShareState:
		return &shareStateCmd{}
	}
	return nil
}

// encodeShareCmd is the record value of a command: its fields with the
// kind spliced in front, as {"k":kind,...}.
func encodeShareCmd(c shareCmd) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s entry: %w", c.kind(), err)
	}
	// body is an object with at least "g" in it: never "{}".
	out := make([]byte, 0, len(body)+len(c.kind())+8)
	out = append(out, `{"k":`...)
	out = strconv.AppendQuote(out, c.kind())
	out = append(out, ',')
	return append(out, body[1:]...), nil
}

// decodeShareCmd parses a share entry of kind and checks it.
func decodeShareCmd(kind string, value []byte) (shareCmd, error) {
	c := newShareCmd(kind)
	if c == nil {
		return nil, &malformedError{class: "unknown-kind", reason: fmt.Sprintf("kind %.40q", kind)}
	}
	if err := json.Unmarshal(value, c); err != nil {
		return nil, &malformedError{class: "not-json", reason: err.Error()}
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// ---- checks of commands read back from the log ----

func badCmd(c shareCmd, format string, args ...any) error {
	return &malformedError{class: c.kind(), reason: fmt.Sprintf(format, args...)}
}

func checkGroupTP(c shareCmd, topic string, p int32) error {
	if c.groupID() == "" {
		return badCmd(c, "empty group name")
	}
	if topic == "" {
		return badCmd(c, "empty topic")
	}
	if p < 0 {
		return badCmd(c, "partition %d is negative", p)
	}
	return nil
}

func checkOffset(c shareCmd, name string, o int64) error {
	if o < 0 || o > maxEntryOffset {
		return badCmd(c, "%s %d out of range [0, %d]", name, o, int64(maxEntryOffset))
	}
	return nil
}

func checkGroupOnly(c shareCmd) error {
	if c.groupID() == "" {
		return badCmd(c, "empty group name")
	}
	return nil
}

func (c *shareConfigCmd) check() error {
	if err := checkGroupOnly(c); err != nil {
		return err
	}
	if c.Config == nil {
		return badCmd(c, "no config")
	}
	return nil
}

func (c *sharePauseCmd) check() error  { return checkGroupOnly(c) }
func (c *shareResumeCmd) check() error { return checkGroupOnly(c) }

func (c *shareInitCmd) check() error {
	if err := checkGroupOnly(c); err != nil {
		return err
	}
	if c.Action != "" && c.Action != actionReset {
		return badCmd(c, "action %.40q", c.Action)
	}
	return errors.Join(checkGroupTP(c, c.Topic, c.Partition), checkOffset(c, "offset", c.Offset))
}

func checkOffsets(c shareCmd, offs []int64) error {
	for _, o := range offs {
		if err := checkOffset(c, "offset", o); err != nil {
			return err
		}
	}
	return nil
}

func (c *shareAcquireCmd) check() error {
	if err := checkGroupTP(c, c.Topic, c.Partition); err != nil {
		return err
	}
	if c.Member == "" {
		return badCmd(c, "empty member")
	}
	return checkOffsets(c, c.Offsets)
}

func (c *shareAckCmd) check() error {
	if err := checkGroupTP(c, c.Topic, c.Partition); err != nil {
		return err
	}
	if c.Ack != ackAccept && c.Ack != ackRelease && c.Ack != ackRenew {
		return badCmd(c, "ack %.40q", c.Ack)
	}
	return checkOffsets(c, c.Offsets)
}

func (c *shareDeadCmd) check() error {
	return errors.Join(checkGroupTP(c, c.Topic, c.Partition), checkOffset(c, "offset", c.Offset))
}

func (c *shareDeadLetteredCmd) check() error {
	if err := checkGroupOnly(c); err != nil {
		return err
	}
	if c.DLQTopic == "" || c.DLQPartition < 0 {
		return badCmd(c, "dead-letter location %q/%d", c.DLQTopic, c.DLQPartition)
	}
	return errors.Join(checkGroupTP(c, c.Topic, c.Partition), checkOffset(c, "offset", c.Offset), checkOffset(c, "dlq offset", c.DLQOffset))
}

func (c *shareResolveCmd) check() error {
	if err := checkGroupOnly(c); err != nil {
		return err
	}
	if c.Action != actionRedrive && c.Action != actionDiscard {
		return badCmd(c, "action %.40q", c.Action)
	}
	return errors.Join(checkGroupTP(c, c.Topic, c.Partition), checkOffset(c, "offset", c.Offset))
}

func (c *shareLeaveCmd) check() error {
	if err := checkGroupOnly(c); err != nil {
		return err
	}
	if c.Member == "" {
		return badCmd(c, "empty member")
	}
	return nil
}

func (c *shareStateCmd) check() error {
	if err := checkGroupOnly(c); err != nil {
		return err
	}
	// A nil state forgets the group.
	if c.State != nil {
		if err := checkShareState(c.State); err != nil {
			return badCmd(c, "%v", err)
		}
	}
	return nil
}

// ---- apply ----

// groupIn returns group's state in m, made when missing.
func groupIn(m map[string]*shareGroupState, group string) *shareGroupState {
	g := m[group]
	if g == nil {
		g = newShareGroupState()
		m[group] = g
	}
	return g
}

func (c *shareConfigCmd) apply(m map[string]*shareGroupState) {
	g := groupIn(m, c.Group)
	g.Config = maps.Clone(c.Config)
	g.parsed = nil
}

func (c *sharePauseCmd) apply(m map[string]*shareGroupState) {
	g := groupIn(m, c.Group)
	g.Paused, g.PausedReason = true, c.Reason
}

func (c *shareResumeCmd) apply(m map[string]*shareGroupState) {
	g := groupIn(m, c.Group)
	g.Paused, g.PausedReason = false, ""
}

func (c *shareInitCmd) apply(m map[string]*shareGroupState) {
	g := groupIn(m, c.Group)
	k := tpKey(c.Topic, c.Partition)
	sp := g.Partitions[k]
	switch {
	case sp == nil || c.Action == actionReset:
		g.Partitions[k] = &sharePartition{Start: c.Offset}
	case c.Offset > sp.Start:
		// The records below were deleted by retention before the group
		// finished them.
		for o := range sp.Recs {
			if o < c.Offset {
				delete(sp.Recs, o)
			}
		}
		sp.Start = c.Offset
		sp.advance()
	}
}

func (c *shareAcquireCmd) apply(m map[string]*shareGroupState) {
	sp := groupIn(m, c.Group).partition(c.Topic, c.Partition)
	if sp == nil {
		return
	}
	for _, o := range c.Offsets {
		if o < sp.Start {
			continue
		}
		r := sp.rec(o)
		r.State, r.Owner, r.LockUntil = recAcquired, c.Member, c.LockUntil
		r.Deliveries++
		if r.Deliveries > 1 {
			sp.Redeliveries++
		}
		if r.FirstDelivery == 0 {
			r.FirstDelivery = c.At
		}
		r.LastDelivery = c.At
	}
}

func (c *shareAckCmd) apply(m map[string]*shareGroupState) {
	sp := groupIn(m, c.Group).partition(c.Topic, c.Partition)
	if sp == nil {
		return
	}
	for i, o := range c.Offsets {
		r := sp.Recs[o]
		if r == nil || o < sp.Start {
			continue
		}
		switch c.Ack {
		case ackAccept:
			r.State, r.Owner = recAcked, ""
			sp.Acked++
			for k, q := range sp.Quarantine {
				if q.RedriveOffset == o {
					delete(sp.Quarantine, k)
				}
			}
		case ackRelease:
			r.State, r.Owner, r.LockUntil = recAvailable, "", 0
			if i < len(c.Avail) {
				r.AvailableAt = c.Avail[i]
			}
			if c.Err != "" {
				r.LastError = c.Err
			}
		case ackRenew:
			r.LockUntil = c.LockUntil
		}
	}
	sp.advance()
}

func (c *shareDeadCmd) apply(m map[string]*shareGroupState) {
	sp := groupIn(m, c.Group).partition(c.Topic, c.Partition)
	if sp == nil || c.Offset < sp.Start {
		return
	}
	r := sp.rec(c.Offset)
	r.State, r.Owner, r.LockUntil = recDead, "", 0
	if c.Err != "" {
		r.LastError = c.Err
	}
	if c.Quarantine {
		if sp.Quarantine == nil {
			sp.Quarantine = map[string]*quarantine{}
		}
		sp.Quarantine[string(c.Key)] = &quarantine{DeadOffset: c.Offset, RedriveOffset: -1}
	}
}

func (c *shareDeadLetteredCmd) apply(m map[string]*shareGroupState) {
	g := groupIn(m, c.Group)
	sp := g.partition(c.Topic, c.Partition)
	if sp == nil {
		return
	}
	r := sp.Recs[c.Offset]
	if r == nil || c.Offset < sp.Start {
		return
	}
	g.DeadLetters = append(g.DeadLetters, &deadLetter{Topic: c.Topic, Partition: c.Partition, Offset: c.Offset,
		DLQTopic: c.DLQTopic, DLQPartition: c.DLQPartition, DLQOffset: c.DLQOffset, State: dlPending,
		Deliveries: r.Deliveries, LastError: r.LastError, FirstDelivery: r.FirstDelivery, LastDelivery: r.LastDelivery,
		Key: bytes.Clone(c.Key), KeyNull: c.KeyNull})
	r.State = recDeadLettered
	sp.DeadLettered++
	sp.advance()
}

func (c *shareResolveCmd) apply(m map[string]*shareGroupState) {
	g := groupIn(m, c.Group)
	d := g.deadLetter(c.Topic, c.Partition, c.Offset)
	if d == nil || d.State != dlPending {
		return
	}
	sp := g.partition(c.Topic, c.Partition)
	switch c.Action {
	case actionRedrive:
		d.State, d.RedriveOffset = dlRedriven, c.RedriveOffset
		if sp != nil {
			if q := sp.Quarantine[string(d.Key)]; q != nil && q.DeadOffset == d.Offset && !d.KeyNull {
				q.RedriveOffset = c.RedriveOffset
			}
		}
	case actionDiscard:
		d.State = dlDiscarded
		if sp != nil {
			if q := sp.Quarantine[string(d.Key)]; q != nil && q.DeadOffset == d.Offset && !d.KeyNull {
				delete(sp.Quarantine, string(d.Key))
			}
		}
	}
	g.trimDeadLetters()
}

func (c *shareLeaveCmd) apply(m map[string]*shareGroupState) {
	for _, sp := range groupIn(m, c.Group).Partitions {
		for _, r := range sp.Recs {
			if r.State == recAcquired && r.Owner == c.Member {
				r.State, r.Owner, r.LockUntil, r.AvailableAt = recAvailable, "", 0, 0
			}
		}
	}
}

func (c *shareStateCmd) apply(m map[string]*shareGroupState) {
	if c.State == nil {
		delete(m, c.Group)
		return
	}
	m[c.Group] = c.State.clone()
}
