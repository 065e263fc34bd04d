package membership

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrips(t *testing.T) {
	for _, leaving := range []bool{false, true} {
		in := testMeta("n1", 1)
		b, err := encodeMeta(in, leaving)
		if err != nil {
			t.Fatal(err)
		}
		out, gotLeaving, err := decodeMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := withMetaVersion(in); out != want || gotLeaving != leaving {
			t.Fatalf("decode(encode(%+v, %v)) = %+v, %v", in, leaving, out, gotLeaving)
		}
	}
}

func TestMetaDecodeToleratesNewerNodes(t *testing.T) {
	// A later version may add fields; an older node keeps working.
	out, _, err := decodeMeta([]byte(`{"v":7,"id":"n9","grpc":"h:1","zone":"eu-1","weight":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != "n9" || out.GRPCAddr != "h:1" || out.Version != 7 {
		t.Fatalf("got %+v", out)
	}
}

func TestMetaDecodeRejectsForeignMeta(t *testing.T) {
	for _, b := range []string{"", "not json", `{"id":"x"}`, `{"v":1}`, "\x00\x01"} {
		if _, _, err := decodeMeta([]byte(b)); err == nil {
			t.Errorf("decodeMeta(%q) accepted foreign meta", b)
		}
	}
}

func TestMetaSizeLimitIsExact(t *testing.T) {
	// Grow Rack until the leaving-marked encoding is exactly at the limit.
	m := Meta{ID: "n1"}
	for {
		b, _ := encodeMeta(m, true)
		if len(b) == memberlist.MetaMaxSize {
			break
		}
		m.Rack += "r"
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("meta of exactly %d bytes rejected: %v", memberlist.MetaMaxSize, err)
	}
	m.Rack += "r"
	err := m.Validate()
	var fe *FieldError
	if !errors.Is(err, ErrMetaTooLarge) || !errors.As(err, &fe) || fe.Field != "Meta" {
		t.Fatalf("meta one byte over the limit: %v", err)
	}
	if !strings.Contains(err.Error(), "513 bytes") {
		t.Fatalf("error %q does not say the size", err)
	}
}
