package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/client"
)

//go:embed assets
var assets embed.FS

// Console serves the web console. It is an http.Handler for the paths
// under /ui/.
type Console struct {
	cfg      Config
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	// actionKey signs the confirmation forms of actions (see actionToken):
	// a form from another site cannot carry a valid signature.
	actionKey [32]byte
}

// New builds a console; Close releases its API clients.
func New(cfg Config) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Console{cfg: cfg, sessions: newSessions(cfg), pages: map[string]*template.Template{}}
	if _, err := rand.Read(c.actionKey[:]); err != nil {
		return nil, fmt.Errorf("console: action key: %w", err)
	}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /ui/{$}", c.page("cluster", c.clusterPage))
	m.HandleFunc("GET /ui/topics", c.page("topics", c.topicsPage))
	m.HandleFunc("GET /ui/topics/{name}", c.page("topic", c.topicPage))
	m.HandleFunc("GET /ui/topics/{name}/messages", c.page("messages", c.messagesPage))
	m.HandleFunc("GET /ui/groups", c.page("groups", c.groupsPage))
	m.HandleFunc("GET /ui/groups/{name}", c.page("group", c.groupPage))
	m.HandleFunc("GET /ui/shares", c.page("shares", c.sharesPage))
	m.HandleFunc("GET /ui/shares/{name}", c.page("share", c.sharePage))
	m.HandleFunc("GET /ui/shares/{name}/dlq", c.page("confirm", c.confirmPage))
	m.HandleFunc("POST /ui/shares/{name}/dlq", c.page("done", c.resolvePage))
	c.mux = m
	return c, nil
}

// Close closes the API clients.
func (c *Console) Close() error {
	c.sessions.close()
	return nil
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// The console renders broker data (keys, values, headers) that anyone
	// with produce rights chose: no scripts but ours, no framing.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) parseTemplates() error {
	for _, name := range []string{"cluster", "topics", "topic", "messages", "groups", "group", "shares", "share", "confirm", "done", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// view is what every page template receives.
type view struct {
	Title   string
	Section string // nav entry to highlight
	User    string
	Refresh int // seconds; 0: the page does not refresh
	Data    any
	Err     string
}

// request is one page request with its API client.
type request struct {
	*http.Request
	ctx  context.Context
	cl   *client.Client
	user string
	v    *view
}

// page adapts a page function: it authenticates the request, gives it a
// client acting as the request's user, and renders the result or the
// error.
func (c *Console) page(tmpl string, fill func(*request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), c.cfg.RequestTimeout)
		defer cancel()
		user, pass := "", ""
		if c.cfg.Auth {
			var ok bool
			user, pass, ok = r.BasicAuth()
			if !ok || user == "" {
				c.challenge(w, r, "Sign in with a Skiff user name and password (skiff user create).")
				return
			}
		}
		cl, err := c.sessions.get(ctx, user, pass)
		if err != nil {
			if errors.Is(err, client.ErrUnauthenticated) {
				c.challenge(w, r, "The cluster did not accept that user name and password.")
				return
			}
			c.fail(w, r, user, http.StatusBadGateway, fmt.Errorf("reach the cluster: %w", err))
			return
		}
		v := &view{Section: tmpl, User: user}
		if c.cfg.Refresh > 0 {
			v.Refresh = int(max(1, c.cfg.Refresh/time.Second))
		}
		req := &request{Request: r, ctx: ctx, cl: cl, user: user, v: v}
		if err := fill(req); err != nil {
			var re *redirectError
			switch {
			case errors.As(err, &re):
				http.Redirect(w, r, re.to, http.StatusSeeOther)
			case errors.Is(err, client.ErrUnauthenticated):
				c.sessions.drop(user, pass)
				c.challenge(w, r, "The cluster no longer accepts that user name and password.")
			case errors.Is(err, client.ErrPermissionDenied):
				c.fail(w, r, user, http.StatusForbidden, err)
			case errors.Is(err, client.ErrUnknownTopic), errors.Is(err, client.ErrGroupNotFound), errors.Is(err, errNotFound):
				c.fail(w, r, user, http.StatusNotFound, err)
			case errors.Is(err, errBadRequest):
				c.fail(w, r, user, http.StatusBadRequest, err)
			default:
				c.fail(w, r, user, http.StatusBadGateway, err)
			}
			return
		}
		c.render(w, tmpl, http.StatusOK, v)
	}
}

var (
	errNotFound   = errors.New("not found")
	errBadRequest = errors.New("bad request")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

func (c *Console) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="skiff", charset="UTF-8"`)
	c.fail(w, r, "", http.StatusUnauthorized, errors.New(msg))
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, user string, status int, err error) {
	if status >= 500 {
		c.cfg.Logger.Warn("console page failed", "path", r.URL.Path, "error", err)
	}
	c.render(w, "error", status, &view{Title: http.StatusText(status), User: user, Err: err.Error()})
}

func (c *Console) render(w http.ResponseWriter, name string, status int, v *view) {
	var b strings.Builder
	if err := c.pages[name].Execute(&b, v); err != nil {
		c.cfg.Logger.Error("console template", "page", name, "error", err)
		http.Error(w, "console: cannot render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}

// actionTTL is how long a confirmation form stays valid.
const actionTTL = 10 * time.Minute

// actionToken signs an action for one user: the confirmation page embeds
// it and the POST must return it unchanged, so the action happens only
// after a person saw the confirmation (and no other site can forge the
// POST, whose Basic credentials the browser would add by itself).
func (c *Console) actionToken(user string, f url.Values, expires int64) string {
	m := hmac.New(sha256.New, c.actionKey[:])
	for _, s := range []string{user, f.Get("group"), f.Get("action"), f.Get("topic"), f.Get("offsets"), f.Get("all"), strconv.FormatInt(expires, 10)} {
		fmt.Fprintf(m, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) checkToken(user string, f url.Values, now time.Time) error {
	expires, err := strconv.ParseInt(f.Get("expires"), 10, 64)
	if err != nil {
		return badRequest("the confirmation form is incomplete; open the dead letters page again")
	}
	if now.Unix() > expires {
		return badRequest("the confirmation expired; open the dead letters page again")
	}
	want := c.actionToken(user, f, expires)
	if !hmac.Equal([]byte(want), []byte(f.Get("token"))) {
		return badRequest("the confirmation does not match this action; open the dead letters page again")
	}
	return nil
}
