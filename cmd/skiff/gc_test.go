package main

import "testing"

func TestGCPlan(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	withGOGC := func(k string) (string, bool) { return "200", k == "GOGC" }
	cases := []struct {
		name             string
		busySet, idleSet bool
		busy, idle       int
		env              func(string) (string, bool)
		want             gcSettings
		wantErr          bool
	}{
		{"defaults", false, false, 100, defaultIdleGCPercent, noEnv, gcSettings{busy: 100, idle: 50, tune: true, set: true}, false},
		{"GOGC alone is left to the runtime", false, false, 100, defaultIdleGCPercent, withGOGC, gcSettings{}, false},
		{"a flag wins over GOGC", true, false, 80, defaultIdleGCPercent, withGOGC, gcSettings{busy: 80, idle: 50, tune: true, set: true}, false},
		{"idle target off", false, true, 100, 0, noEnv, gcSettings{busy: 100, set: true}, false},
		{"collection off never tunes", true, false, -1, defaultIdleGCPercent, noEnv, gcSettings{busy: -1, idle: 50, set: true}, false},
		{"gc percent too small", true, false, 5, defaultIdleGCPercent, noEnv, gcSettings{}, true},
		{"idle above busy", true, true, 80, 90, noEnv, gcSettings{}, true},
		{"idle too small", false, true, 100, 5, noEnv, gcSettings{}, true},
	}
	for _, tc := range cases {
		got, err := gcPlan(tc.busySet, tc.busy, tc.idleSet, tc.idle, tc.env)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: gcPlan = %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestGCTarget(t *testing.T) {
	s := gcSettings{busy: 100, idle: 50, tune: true, set: true}
	cases := []struct {
		name      string
		rates     []float64 // samples in order, from a busy start
		wantFinal int
	}{
		{"idle only after gcIdleSamples quiet samples", []float64{0, 6 << 20, 1 << 20, idleAllocRate - 1}, 50},
		{"one sample short stays busy", []float64{0, 6 << 20, 1 << 20}, 100},
		{"a dip amid load stays busy", []float64{500 << 20, 9 << 20, 200 << 20, 20 << 20, 300 << 20, 0, 0}, 100},
		{"load leaves idle at once", []float64{0, 0, 0, 0, 0, idleAllocRate}, 100},
		{"quiet again after load", []float64{0, 0, 0, 0, 400 << 20, 0, 0, 0, 0}, 50},
	}
	for _, tc := range cases {
		got, low := s.busy, 0
		for _, r := range tc.rates {
			got, low = gcTarget(s, r, low)
		}
		if got != tc.wantFinal {
			t.Errorf("%s: target after %v = %d, want %d", tc.name, tc.rates, got, tc.wantFinal)
		}
	}
}
