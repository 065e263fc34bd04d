package main

import "testing"

func TestGCPercent(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	withGOGC := func(k string) (string, bool) { return "200", k == "GOGC" }
	cases := []struct {
		name      string
		flagSet   bool
		flagValue int
		env       func(string) (string, bool)
		want      int
		wantOK    bool
		wantErr   bool
	}{
		{"default", false, defaultGCPercent, noEnv, defaultGCPercent, true, false},
		{"GOGC in the environment wins over the default", false, defaultGCPercent, withGOGC, 0, false, false},
		{"flag wins over GOGC", true, 80, withGOGC, 80, true, false},
		{"flag off", true, -1, noEnv, -1, true, false},
		{"flag too small", true, 5, noEnv, 0, false, true},
		{"flag zero", true, 0, noEnv, 0, false, true},
	}
	for _, tc := range cases {
		got, ok, err := gcPercent(tc.flagSet, tc.flagValue, tc.env)
		if (err != nil) != tc.wantErr || ok != tc.wantOK || got != tc.want {
			t.Errorf("%s: gcPercent = %d, %v, %v; want %d, %v, error %v", tc.name, got, ok, err, tc.want, tc.wantOK, tc.wantErr)
		}
	}
}
