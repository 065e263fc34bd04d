package console

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"

	"github.com/skiff-mq/skiff/client"
)

// sessions keeps one API client per set of credentials, so that a page
// refreshing every few seconds does not dial the brokers and check a
// password hash each time. A client is created only once the API accepted
// its credentials (client.New asks for metadata), so wrong passwords are
// never kept.
type sessions struct {
	cfg Config

	mu     sync.Mutex // guards the fields below
	byKey  map[sessionKey]*list.Element
	lru    *list.List // of *session, most recent at the front
	closed bool
}

// sessionKey names credentials without keeping the password itself.
type sessionKey struct {
	user string
	pass [sha256.Size]byte
}

type session struct {
	key sessionKey
	cl  *client.Client
}

func newSessions(cfg Config) *sessions {
	return &sessions{cfg: cfg, byKey: map[sessionKey]*list.Element{}, lru: list.New()}
}

// get returns the client for user and password ("" when authentication is
// off), creating it if needed.
func (s *sessions) get(ctx context.Context, user, password string) (*client.Client, error) {
	key := sessionKey{user: user, pass: sha256.Sum256([]byte(password))}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, client.ErrClosed
	}
	if e, ok := s.byKey[key]; ok {
		s.lru.MoveToFront(e)
		cl := e.Value.(*session).cl
		s.mu.Unlock()
		return cl, nil
	}
	s.mu.Unlock()

	ccfg := client.DefaultConfig()
	ccfg.Brokers = s.cfg.Brokers
	ccfg.TLS = s.cfg.TLS
	ccfg.User, ccfg.Password = user, password
	ccfg.Logger = s.cfg.Logger
	cl, err := client.New(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cl.Close()
		return nil, client.ErrClosed
	}
	if e, ok := s.byKey[key]; ok { // created concurrently: keep the first
		cl.Close()
		s.lru.MoveToFront(e)
		return e.Value.(*session).cl, nil
	}
	s.byKey[key] = s.lru.PushFront(&session{key: key, cl: cl})
	for s.lru.Len() > s.cfg.MaxSessions {
		old := s.lru.Remove(s.lru.Back()).(*session)
		delete(s.byKey, old.key)
		// A page still using it fails with ErrClosed and is retried by
		// the browser's next refresh.
		old.cl.Close()
	}
	return cl, nil
}

// drop forgets the client of user and password: the API no longer
// accepts them (password changed, user deleted).
func (s *sessions) drop(user, password string) {
	key := sessionKey{user: user, pass: sha256.Sum256([]byte(password))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byKey[key]; ok {
		s.lru.Remove(e)
		delete(s.byKey, key)
		e.Value.(*session).cl.Close()
	}
}

func (s *sessions) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for e := s.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*session).cl.Close()
	}
	s.lru.Init()
	clear(s.byKey)
}
