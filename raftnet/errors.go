package raftnet

import "errors"

var (
	// ErrGroupExists is returned by Mux.StreamLayer when the group name is
	// already registered on that Mux. Close the old StreamLayer first (a
	// restarted replica registers again after its transport closed).
	ErrGroupExists = errors.New("raftnet: group already registered")

	// ErrInvalidName is returned for a group name or node id that is empty,
	// longer than MaxNameLen or uses characters outside [A-Za-z0-9._:/-].
	ErrInvalidName = errors.New("raftnet: invalid name")

	// ErrBadHeader is wrapped by errors about malformed connection headers.
	ErrBadHeader = errors.New("raftnet: bad connection header")

	// ErrNotAdvertisable is returned by NewMux when peers could not dial the
	// address it would advertise (an unspecified IP such as 0.0.0.0 or ::).
	// Set MuxConfig.Advertise.
	ErrNotAdvertisable = errors.New("raftnet: address is not advertisable")

	// ErrBadFrame is wrapped by errors about malformed Hub frames; the
	// connection that carried one is closed.
	ErrBadFrame = errors.New("raftnet: bad frame")

	// ErrRPCTimeout is wrapped by the error of a Hub RPC that got no answer
	// within its timeout.
	ErrRPCTimeout = errors.New("raftnet: rpc timed out")
)
